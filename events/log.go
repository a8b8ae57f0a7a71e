// Package events is the event log: facts carried as Watermill messages and
// committed to SQLite (mattn/go-sqlite3, WAL) by one writer goroutine that
// batches concurrent appends into one transaction (group commit) and assigns
// every event its global sequence and every broadcast its channel offset, in
// commit order. Committed events are handed to Subscribers from memory, so
// live consumers never poll; readers page through the same file.
package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/health"
	"github.com/fazt-realtime/fazt/migrations"
)

// ErrClosed is returned by appends after Close.
var ErrClosed = errors.New("event log is closed")

// Durability chooses what a commit survives.
type Durability string

// Durability levels.
const (
	// DurabilityNormal survives a crash of the process (WAL, synchronous=NORMAL).
	DurabilityNormal Durability = "normal"
	// DurabilityFull survives power loss: fsync on every commit (synchronous=FULL).
	DurabilityFull Durability = "full"
)

// Config configures a Log.
type Config struct {
	// Path is the SQLite file. It is created with its schema if missing.
	Path string
	// Durability defaults to DurabilityNormal.
	Durability Durability
	// ReadOnly opens the file for reading only, as the CLI does beside a
	// running server: no migrations, no writer, Append fails.
	ReadOnly bool
	// MaxPages, when set, caps the database file at that many pages (of 4
	// KiB), as a full disk would; for tests of that failure.
	MaxPages int
	// MaxBatch caps how many events one transaction commits (default 1024).
	MaxBatch int
	// TailSize is how many recent events are kept in memory for
	// Subscribers (default 16384); older ones are read back from the file.
	TailSize int
	// TailBytes caps the memory of those events, about (default 64 MiB):
	// with big messages, fewer than TailSize are kept.
	TailBytes int
	// HeadCache is how many channels' heads the writer keeps in memory
	// (default 65536); the others are read from the file when a broadcast
	// or a subscribe needs them. It bounds the writer's memory on a server
	// whose apps make a channel per user or per document. A file with no
	// more channels than this has all their heads read at start (about
	// 2 ms per 1,000 channels on the machine of BENCHMARKS.md, stop 26),
	// so that until the cache first drops one, a channel it does not hold
	// is known to have no history without a read.
	HeadCache int
	// WALKeep is the largest WAL file a log that writes little keeps, in
	// bytes (default 4 MiB). A burst of writes, or a long read that holds
	// the WAL, grows the file, and SQLite reuses it from the start rather
	// than shrink it. Once everything is copied, the checkpointer empties
	// a file larger than this if nothing has been committed for a period
	// of its own (one to two seconds after the last commit, or within
	// about a second after the last reader of the WAL is done), or if
	// what the WAL holds since it last started over is under a quarter
	// of this, or under a sixteenth of the file, at two checkpoints in a
	// row: commits still come, but few for the file's size.
	WALKeep int64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Durability == "" {
		c.Durability = DurabilityNormal
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1024
	}
	if c.TailSize <= 0 {
		c.TailSize = 16384
	}
	if c.TailBytes <= 0 {
		c.TailBytes = 64 << 20
	}
	if c.HeadCache <= 0 {
		c.HeadCache = 65536
	}
	if c.WALKeep <= 0 {
		c.WALKeep = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with the config at once.
func (c Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("database path is empty"))
	}
	switch c.Durability {
	case "", DurabilityNormal, DurabilityFull:
	default:
		errs = append(errs, fmt.Errorf("durability %q: want normal or full", c.Durability))
	}
	return errors.Join(errs...)
}

// Log is the SQLite event log. It implements domain.Log and domain.History.
// All methods are safe for concurrent use.
type Log struct {
	cfg Config
	wdb *sql.DB // the one writer connection
	rdb *sql.DB // readers
	cdb *sql.DB // the checkpointer's connection
	// frameBytes is the size of a WAL frame: a page and its header.
	frameBytes int64
	// lock keeps other processes from writing the file (lockFile).
	lock *os.File
	// ckpt tells the checkpointer that the writer committed.
	ckpt chan struct{}
	reqs chan *appendReq
	tail *tail
	// closed is done's channel: it closes when the log does, and done
	// interrupts what SQLite is doing for the log's own goroutines.
	closed <-chan struct{}
	done   context.Context
	close  context.CancelFunc
	// stopped is closed when the writer has returned: a request it has
	// not answered by then was never taken.
	stopped chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	log     *slog.Logger

	// Owned by the writer goroutine.
	nextSeq  uint64
	lastTime int64
	// clockWarned is when commitTime last warned of a clock behind.
	clockWarned time.Time
	heads       map[chanKey]*chanHead // a cache of committed heads (Config.HeadCache)
	// allHeads says that heads holds every channel in the file: from a
	// start with no more channels than the cache holds, until the cache
	// first drops one. A channel it does not hold then has no history,
	// and no read of the file is needed to find that (a subscribe to a
	// new channel, every connect of `fazt bench conns`).
	allHeads bool

	// failing holds why the last commit failed, unless for the append
	// itself (storageFailure: a full disk, an I/O error, a damaged
	// schema), until a commit succeeds.
	failing health.Failing
	// probeable: every failure since the last success is one the
	// writer's probe tests (fail). The writer's own.
	probeable bool

	pins    pins    // the messages of channels that retention must leave alone for now
	readers readers // how far the subscriptions have read
	stmts   writerStmts
}

// The reads of channels' heads, from the view channel_heads (migration
// 0004): a channel's epoch and head, and every channel's.
const (
	readHeadQuery  = `SELECT epoch, head FROM channel_heads WHERE app = ? AND name = ?`
	loadHeadsQuery = `SELECT app, name, epoch, head FROM channel_heads`
)

// writerStmts are the writer's statements, prepared once on the one write
// connection and bound to each transaction with Tx.Stmt, so a commit does
// not pay for parsing and planning them again.
type writerStmts struct {
	insEvent, insMsg, readHead, insChannel *sql.Stmt
}

func (s *writerStmts) prepare(db *sql.DB) error {
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&s.insEvent, `INSERT INTO events (seq, uuid, name, app, channel, client, "offset", ts, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.insMsg, `INSERT INTO messages (app, channel, "offset", seq, ts, data) VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.readHead, readHeadQuery},
		{&s.insChannel, `INSERT INTO channels (app, name, epoch, head_floor, created) VALUES (?, ?, ?, ?, ?)`},
	} {
		st, err := db.Prepare(p.sql)
		if err != nil {
			s.close()
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.st = st
	}
	return nil
}

func (s *writerStmts) close() {
	for _, st := range []*sql.Stmt{s.insEvent, s.insMsg, s.readHead, s.insChannel} {
		if st != nil {
			st.Close()
		}
	}
	*s = writerStmts{}
}

var (
	_ domain.Log     = (*Log)(nil)
	_ domain.History = (*Log)(nil)
)

type chanKey struct{ app, channel string }

type chanHead struct {
	epoch string
	head  uint64
	isNew bool
}

type appendReq struct {
	facts []domain.Fact
	uuids []string // each fact's message UUID, stored with its event
	// msgs are the Watermill messages Publisher.Publish was given, which
	// get the committed payload and metadata; nil for Append.
	msgs   []*message.Message
	events []domain.Event
	err    error
	done   chan struct{}
}

// hasEventLog tells whether db holds an event log, as a reader needs.
func hasEventLog(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'events'`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no event log in it")
	}
	return nil
}

// Open opens (creating if needed) the log at cfg.Path, applies migrations and
// starts the writer.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("event log config: %w", err)
	}
	l := &Log{
		cfg:     cfg,
		reqs:    make(chan *appendReq, 4096),
		tail:    newTail(cfg.TailSize, cfg.TailBytes),
		stopped: make(chan struct{}),
		heads:   make(map[chanKey]*chanHead),
		ckpt:    make(chan struct{}, 1),
		log:     cfg.Logger,
	}
	l.done, l.close = context.WithCancel(context.Background())
	l.closed = l.done.Done()
	if cfg.ReadOnly {
		if _, err := os.Stat(cfg.Path); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
	} else {
		if dir := filepath.Dir(cfg.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create database folder: %w", err)
			}
		}
		lock, err := lockFile(cfg.Path)
		if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		l.lock = lock
	}
	var err error
	if l.rdb, err = sql.Open("sqlite3", dsn(cfg.Path, cfg.Durability, true, busyWaitMS)); err != nil {
		l.unlock()
		return nil, fmt.Errorf("open database: %w", err)
	}
	l.rdb.SetMaxOpenConns(8)
	l.rdb.SetMaxIdleConns(8)
	if cfg.ReadOnly {
		if err := l.rdb.PingContext(ctx); err != nil {
			l.rdb.Close()
			return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
		}
		if err := hasEventLog(ctx, l.rdb); err != nil {
			l.rdb.Close()
			return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
		}
		if err := migrations.Check(ctx, l.rdb); err != nil {
			l.rdb.Close()
			return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
		}
		l.close()
		close(l.stopped)
		return l, nil
	}
	// Read-only, before the writer's connection switches the file to WAL
	// (a file not there yet is a new log's; the writer's lock made it
	// already, where there is one).
	if _, err := os.Stat(cfg.Path); err == nil {
		err = migrations.CheckOwned(ctx, l.rdb)
		if err != nil {
			l.rdb.Close()
			l.unlock()
			return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
		}
	}
	if l.wdb, err = sql.Open("sqlite3", dsn(cfg.Path, cfg.Durability, false, busyWaitMS)); err != nil {
		l.rdb.Close()
		l.unlock()
		return nil, fmt.Errorf("open database: %w", err)
	}
	l.wdb.SetMaxOpenConns(1)
	l.wdb.SetMaxIdleConns(1)
	l.wdb.SetConnMaxLifetime(0)
	if cfg.MaxPages > 0 {
		if _, err := l.wdb.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", cfg.MaxPages)); err != nil {
			l.closeDBs()
			return nil, err
		}
	}
	if err := migrations.Apply(ctx, l.wdb, l.log); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
	}
	// Commit times never go backwards, so the last event has the latest
	// time too: read it by its key (MAX(ts) would read the whole table,
	// there being no index on time).
	var last, lastTime int64
	err = l.wdb.QueryRowContext(ctx, `SELECT seq, ts FROM events ORDER BY seq DESC LIMIT 1`).Scan(&last, &lastTime)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		l.closeDBs()
		return nil, fmt.Errorf("read last sequence: %w", err)
	}
	l.nextSeq, l.lastTime = uint64(last)+1, lastTime
	l.tail.head = uint64(last)
	l.tail.oldest = l.nextSeq
	// The checkpointer copies the WAL into the database file from a
	// connection of its own (checkpointer). The writer checkpoints when
	// the WAL reaches 64 MiB all the same, copying only what the
	// checkpointer has not, so that the WAL can start over.
	if _, err := l.wdb.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 16384`); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
	}
	// A WAL file that grew past 128 MiB (twice the 64 MiB at which the
	// writer checkpoints) while a long read held the WAL is cut back to
	// 128 MiB when the WAL starts over, under load too. A lower limit cut the file back at most restarts of a
	// saturated server, and cost it up to 7% (4 MiB; BENCHMARKS.md, stop
	// 20): the checkpointer empties a quiet log's WAL file instead.
	if _, err := l.wdb.ExecContext(ctx, `PRAGMA journal_size_limit = 134217728`); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
	}
	var pageSize int64
	if err := l.wdb.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
	}
	l.frameBytes = pageSize + 24
	if err := l.stmts.prepare(l.wdb); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
	}
	// The last steps that can fail: a mark left by an open that failed
	// after it would be taken for a crash.
	if err := l.markRun(ctx, bootID()); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
	}
	if err := l.loadHeads(ctx); err != nil {
		clearRunMark(context.WithoutCancel(ctx), l.wdb)
		l.closeDBs()
		return nil, fmt.Errorf("open database %s: %w", cfg.Path, err)
	}
	// The checkpointer never waits for a lock (busy timeout 0): a passive
	// checkpoint does not, and emptying the WAL gives up at once when the
	// writer or a reader is busy with it, rather than hold the writer up.
	if l.cdb, err = sql.Open("sqlite3", dsn(cfg.Path, cfg.Durability, false, 0)); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("open database: %w", err)
	}
	l.cdb.SetMaxOpenConns(1)
	l.cdb.SetMaxIdleConns(1)
	l.cdb.SetConnMaxLifetime(0)
	l.wg.Add(2)
	go l.writer()
	go l.checkpointer()
	return l, nil
}

// checkpointEvery is how often, at most, the checkpointer runs while
// commits come in.
const checkpointEvery = time.Second

// checkpointSoon tells the checkpointer that something was committed.
func (l *Log) checkpointSoon() {
	select {
	case l.ckpt <- struct{}{}:
	default:
	}
}

// checkpointer copies what the writer committed into the database file
// (a passive checkpoint), at most once per checkpointEvery, until the log
// closes. On the writer's connection, a checkpoint held up every append
// queued behind it for as long as it copied 64 MiB of WAL and fsynced:
// at a steady 2,000 publishes/s the p99 of deliveries was 42 ms with it,
// 14 to 17 ms with this (BENCHMARKS.md). From here it runs beside the writer,
// which SQLite allows; the fsyncs still slow the writer's own file writes
// a little while they last, so it runs once a second rather than more
// often (every 250 ms doubled the p99 of a saturated js run), and its
// I/O is in the idle class. The WAL starts over when a write finds all of
// it copied: from 2,000 publishes/s to 2000 channels up to a saturated
// server's 7,300, that happened once to twice a second on average
// (BENCHMARKS.md, stop 18). But every commit writes the pages it dirtied
// as new frames, tens of MB a second under such loads, so some stretches
// between restarts still reach 64 MiB, as does a burst of 10,000
// subscribes to new channels; there the writer's own checkpoint copies
// what the checkpointer has not, and the WAL starts over. A long read
// holds the WAL too, since no checkpoint copies past its snapshot. SQLite
// reuses the WAL file from the start rather than shrink it, so once the
// log is quiet, or writes little again, the checkpointer empties a file
// that grew past Config.WALKeep (a TRUNCATE checkpoint), and tries again,
// a period at a time, while a reader still holds it.
func (l *Log) checkpointer() {
	defer l.wg.Done()
	if err := idleIOPriority(); err != nil {
		l.log.Warn("event log checkpointer: could not lower its I/O priority", "err", err)
	}
	t := time.NewTimer(checkpointEvery)
	t.Stop()
	// Close does not wait out a checkpoint stuck behind a busy disk: its
	// context ends with the log, which interrupts it.
	ctx := l.done
	var failed time.Time
	big := false      // the WAL file is over WALKeep: empty it when quiet or light
	signaled := false // a commit's signal came while waiting for quiet
	lightRun := 0     // checkpoints in a row that found the WAL light
	for {
		quiet := false
		if !signaled {
			if big {
				committed, closed := l.await(t, l.ckpt)
				if closed {
					return
				}
				quiet = !committed // nothing was committed for a period
			} else {
				select {
				case <-l.ckpt:
				case <-l.closed:
					return
				}
			}
		}
		signaled = false
		if !quiet {
			// Commits during the wait are copied with this one.
			if _, closed := l.await(t, nil); closed {
				return
			}
			// What is committed from here tells the checkpointer again.
			select {
			case <-l.ckpt:
			default:
			}
		}
		all, frames := l.checkpoint(ctx, "PASSIVE", &failed)
		size := l.walSize()
		big = size > l.cfg.WALKeep
		lightRun = lightRunAfter(lightRun, all, lightWAL(frames, l.frameBytes, l.cfg.WALKeep, size), big)
		if !big || !all {
			continue // a WAL not all copied is tried again after a quiet period
		}
		// Two checkpoints in a row found the WAL light: the log writes
		// little now, for the file's size, and the rest of the file is
		// what an earlier burst left. Emptying it with commits still
		// coming is done once a burst, as a rule: the file grows back to
		// what the log now uses between restarts, which is not light for
		// a file of that size. A WAL that holds more waits for a quiet
		// period, or a saturated server would cut its file back and grow
		// it again at every restart (7% of its CPU at 4 MiB:
		// BENCHMARKS.md, stop 20).
		// One light checkpoint is not enough: the writer's own checkpoint
		// can start the WAL over at any moment of a period, however busy
		// the log.
		light := lightRun >= 2
		if !quiet && !light {
			// All of it is in the file: if nothing more is committed for
			// a period, the log is quiet.
			committed, closed := l.await(t, l.ckpt)
			if closed {
				return
			}
			if committed {
				signaled = true
				continue
			}
		}
		select {
		case <-l.ckpt:
			signaled = true // a commit just came: the WAL is in use
			continue
		default:
		}
		// Emptying it takes the writer's lock. Everything was copied, so
		// it holds it for a truncate, or, if a commit slipped in since,
		// for copying its pages and an fsync of the file; a commit
		// meanwhile waits for it. A reader that still uses the WAL, or a
		// commit under way, makes it give up at once (the connection
		// never waits for a lock), and it is tried again a period later.
		if all, _ := l.checkpoint(ctx, "TRUNCATE", &failed); all {
			big, lightRun = false, 0
		}
	}
}

// lightRunAfter is how many checkpoints in a row have found the WAL
// file over WALKeep (big), all of it copied (all) and the WAL light, after
// one more that found all, light and big: a run of them is counted only
// while the file is big, so that a log that wrote little before a burst
// does not carry a run into it.
func lightRunAfter(run int, all, light, big bool) int {
	if all && light && big {
		return run + 1
	}
	return 0
}

// lightWAL reports whether a WAL of frames frames, of frameBytes each,
// in a file of size bytes, holds under a quarter of keep, or under a
// sixteenth of the file: what a log that writes little, or little for
// the file a burst left, adds to it in a checkpoint period. A log that
// writes a few MiB a second keeps a 64 MiB file otherwise; after the
// file is emptied it grows back to what the log uses.
func lightWAL(frames int, frameBytes, keep, size int64) bool {
	return int64(frames)*frameBytes < max(keep/4, size/16)
}

// await waits a checkpoint period on t, or less if the log closes or, when
// ckpt is not nil, a commit is signalled on it; it reports which.
func (l *Log) await(t *time.Timer, ckpt <-chan struct{}) (committed, closed bool) {
	t.Reset(checkpointEvery)
	select {
	case <-t.C:
		return false, false
	case <-ckpt:
		t.Stop()
		return true, false
	case <-l.closed:
		t.Stop()
		return false, true
	}
}

// checkpoint runs a checkpoint of the given mode on the checkpointer's
// connection and reports whether it copied the whole WAL (for TRUNCATE:
// and emptied the file), and how many frames the WAL holds since it last
// started over. A failure is logged at most once a minute (failed).
func (l *Log) checkpoint(ctx context.Context, mode string, failed *time.Time) (all bool, frames int) {
	var busy, copied int
	err := l.cdb.QueryRowContext(ctx, `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &frames, &copied)
	if err != nil {
		if ctx.Err() == nil && time.Since(*failed) > time.Minute {
			*failed = time.Now()
			l.log.Warn("event log checkpoint failed; the writer checkpoints once the WAL reaches 64 MiB", "mode", mode, "err", err)
		}
		return false, 0
	}
	// Busy (another checkpoint, or a reader or the writer in the way)
	// reports -1 frames, or fewer copied than there are.
	return busy == 0 && frames >= 0 && copied == frames, max(frames, 0)
}

// walSize is the size of the WAL file in bytes, 0 if there is none.
func (l *Log) walSize() int64 {
	fi, err := os.Stat(l.cfg.Path + "-wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// busyWaitMS is how long the writer's and the readers' statements wait for
// another connection's lock, in milliseconds; the checkpointer's never do.
const busyWaitMS = 5000

// uriPath escapes what a file name in a SQLite URI cannot hold as is: a
// '?' would start the parameters (and the driver splits at the first
// one), a '#' would end the name, and a '%' would be read as an escape.
// Anything else SQLite's URI reader takes as it is.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// dsn is the go-sqlite3 data source for the file at path; busyMS is how
// long a statement waits for another connection's lock, in milliseconds.
func dsn(path string, d Durability, readOnly bool, busyMS int) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.Itoa(busyMS))
	q.Set("_foreign_keys", "0")
	// database/sql hands a connection to one goroutine at a time, so
	// SQLite's own per-connection mutex (serialized mode, the driver's
	// default) only adds a lock and unlock to every step and column read:
	// 14% of a replay's CPU. sqlite3_interrupt, which cancellation calls
	// from another goroutine, is safe in this mode too.
	q.Set("_mutex", "no")
	if readOnly {
		q.Set("mode", "ro")
	} else {
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
		// The writer's page cache: 8 MiB, four times SQLite's default,
		// holds the pages that appends to a few thousand channels keep
		// touching (+9% publishes/s in batches to 2,000 channels). 32 MiB
		// cost 5% on small commits, where SQLite's cache truncation
		// (pcache1TruncateUnsafe) took 4% of the CPU (BENCHMARKS.md):
		// when a B-tree balance reorders its new pages it parks one at
		// the page number of the lock byte (262,145 at 4 KiB pages), so
		// the cache's largest page number lies past the end of a file
		// under 1 GiB, and the commit that follows scans the cache's
		// whole hash table for pages to drop, a scan that grows with the
		// cache (SQLite 3.54's balance_nonroot and pcache1Truncate).
		q.Set("_cache_size", "-8192")
		if d == DurabilityFull {
			q.Set("_synchronous", "FULL")
		} else {
			q.Set("_synchronous", "NORMAL")
		}
	}
	return "file:" + uriPath.Replace(path) + "?" + q.Encode()
}

// Close stops accepting appends, commits what is queued, and closes the file.
func (l *Log) Close() error {
	if l.wdb == nil { // read-only
		return l.rdb.Close()
	}
	l.once.Do(l.close)
	l.wg.Wait()
	l.tail.close()
	// Closed cleanly: the next open has nothing to fear (markRun). Left
	// there when this fails: the next open takes it for a crash, which
	// costs at most new epochs.
	return errors.Join(clearRunMark(context.Background(), l.wdb), l.closeDBs())
}

// runKey is the setting that says a writable log is open: the boot of the
// machine it was opened in (bootID) and its durability.
const runKey = "open_run"

// markRun looks for the mark of a run that did not close the log, and
// marks this one, in a machine whose boot is boot ("" where the system
// does not say: nothing is marked). A crash of the process alone loses no
// commit, but one that took the machine down (a power loss, a kernel
// panic, a reset) may, under durability normal, lose those of its last
// moments (SQLite's WAL is synced at checkpoints only): the offsets they
// had would be given again, to other messages, under the same epochs, and
// a client that saw them would resume past the new ones and miss them.
// So a mark of another boot, of a run under normal, gives every channel a
// new epoch, as a restored backup's are: clients that come back with
// their epoch are told (epoch_changed) and replay what is retained. A run
// that ended otherwise in that boot (killed, then the machine restarted)
// is taken for such a crash too: its clients replay for nothing.
//
// The mark is written, with the new epochs, in one transaction synced at
// its commit whatever the durability: before any commit of this run that
// a crash could take. A mark that cannot be written (a full disk) is
// logged, and the log opens unmarked, at synchronous FULL for the run;
// new epochs that cannot be written fail the open.
func (l *Log) markRun(ctx context.Context, boot string) error {
	if boot == "" {
		return nil
	}
	var prev string
	err := l.wdb.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, runKey).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read the last run's mark: %w", err)
	}
	renew := mayHaveLost(prev, boot)
	conn, err := l.wdb.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return err
	}
	var renewed int64
	err = func() error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if renew {
			if renewed, err = renewEpochs(ctx, tx); err != nil {
				return fmt.Errorf("new epochs after a crash of the machine: %w", err)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)`, runKey, boot+" "+string(l.cfg.Durability))
		if err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil && !renew && probeableFailure(err) {
		// Unmarked, the run stays at synchronous FULL: nothing it
		// commits can be lost with the machine, and so nothing needs
		// the mark.
		l.log.Warn("cannot mark the run in the database; it runs at durability full until it is restarted", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if l.cfg.Durability != DurabilityFull {
		if _, serr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`); serr != nil {
			// Not left at FULL unknown to the log; the mark goes
			// (clearing it is synced too), as the open fails.
			clearRunMark(context.WithoutCancel(ctx), conn)
			return fmt.Errorf("back to durability normal: %w", serr)
		}
	}
	if renew {
		l.log.Warn("the last run did not close the database, and the machine has booted since (a power loss or a system crash, or a stop without a clean close before a restart): with durability normal, its last commits may be lost, and their offsets given again; every channel has a new epoch, so that clients replay what is retained rather than skip messages",
			"channels", renewed)
	}
	return nil
}

// mayHaveLost reports whether mark, the mark a run left, says that run
// may have lost commits with its machine: made under a durability other
// than full, in a boot other than boot, or, where this system names no
// boot (a copy made there), in any.
func mayHaveLost(mark, boot string) bool {
	prevBoot, durability, _ := strings.Cut(mark, " ")
	return mark != "" && Durability(durability) != DurabilityFull && (boot == "" || prevBoot != boot)
}

// bootID names the machine's current boot (Linux's boot_id), or "" where
// the system does not say.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// closeDBs closes the connections, the writer's last: SQLite deletes the
// WAL and shared-memory files when the last connection to the file
// closes, once it has copied the WAL in, but only if that connection may
// write. With the readers' last, a stopped server left both files beside
// the database.
func (l *Log) closeDBs() error {
	var errs []error
	errs = append(errs, l.rdb.Close())
	if l.cdb != nil {
		errs = append(errs, l.cdb.Close())
	}
	if l.wdb != nil {
		l.stmts.close()
		if _, err := l.wdb.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, l.wdb.Close())
	}
	l.unlock()
	return errors.Join(errs...)
}

// unlock lets another process open the file for writing (lockFile).
func (l *Log) unlock() {
	if l.lock != nil {
		l.lock.Close()
		l.lock = nil
	}
}

// Head returns the sequence of the newest committed event (0 for none).
func (l *Log) Head() uint64 { return l.tail.lastSeq() }

// Failing returns why the log's last commit failed, unless for the
// append itself (a full disk, an I/O error, a damaged schema), and since
// when its commits have failed so; err is nil once one succeeds, or
// while none has failed.
func (l *Log) Failing() (since time.Time, err error) { return l.failing.State() }

// Append commits facts in one transaction; see domain.Log. Broadcasts have
// their Offset and Epoch filled in. It takes the same path through the
// writer as Publisher.Publish, and each event gets a message UUID as if it
// had come in a Watermill message; but no message is built for it, since
// nothing would read one: the Subscribers deliver each committed event in
// a message of their own.
func (l *Log) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	uuids := make([]string, len(facts))
	for i := range facts {
		uuids[i] = watermill.NewULID()
	}
	return l.publish(ctx, facts, uuids, nil)
}

// publish commits facts, with their message UUIDs, and returns them as
// committed events. When it returns, each of msgs (Publisher.Publish's, in
// the order of facts; nil from Append) has its committed payload and the
// commit's metadata (sequence, time, offset and epoch).
func (l *Log) publish(ctx context.Context, facts []domain.Fact, uuids []string, msgs []*message.Message) ([]domain.Event, error) {
	if len(facts) == 0 {
		return nil, nil
	}
	for i, f := range facts {
		if err := checkFact(f); err != nil {
			return nil, &domain.FactError{Index: i, Err: err}
		}
	}
	req := &appendReq{facts: facts, uuids: uuids, msgs: msgs, done: make(chan struct{})}
	select {
	case <-l.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	default:
	}
	select {
	case l.reqs <- req:
	case <-l.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued, the request is committed or failed by the writer; wait
	// for the answer even if ctx ends, so no caller mistakes a committed
	// event for a lost one. A request queued while Close ran, after the
	// writer's last look at the queue, is never taken.
	select {
	case <-req.done:
	case <-l.stopped:
		select {
		case <-req.done:
		default:
			return nil, ErrClosed
		}
	}
	if req.err != nil {
		return nil, req.err
	}
	return req.events, nil
}

// clockWarnAfter is how far the clock may be behind the log's last time
// before it is worth a warning: a step back of NTP is milliseconds.
const clockWarnAfter = time.Second

// commitTime is the time of a commit at wall time wall: the later of it
// and the log's last time, since commit times never go back. A clock
// that is behind (set back after running ahead) is reported by the gauge
// and, at most once a minute, a warning: until it catches up, every event
// gets the same time.
func (l *Log) commitTime(wall time.Time) int64 {
	ms := wall.UnixMilli()
	behind := time.Duration(l.lastTime-ms) * time.Millisecond
	if behind <= 0 {
		logMetrics.clockBehind.Set(0)
		return ms
	}
	logMetrics.clockBehind.Set(behind.Seconds())
	if behind >= clockWarnAfter && wall.Sub(l.clockWarned) >= time.Minute {
		l.clockWarned = wall
		l.log.Warn("this machine's clock is behind the event log's last time: events keep that time until the clock catches up",
			"behind", behind.Round(time.Millisecond), "log_time", time.UnixMilli(l.lastTime).UTC().Format(time.RFC3339Nano))
	}
	return l.lastTime
}

func checkFact(f domain.Fact) error {
	app, _, _ := f.Scope()
	if app == "" {
		return fmt.Errorf("%s: no app", f.EventName())
	}
	if mb, ok := f.(*domain.MessageBroadcast); ok {
		if err := domain.ValidateChannel(mb.Channel); err != nil {
			return err
		}
		if mb.Offset != 0 {
			return fmt.Errorf("%s: offset is assigned by the log", mb.EventName())
		}
		return checkData(mb.Data)
	}
	if ba, ok := f.(*domain.BroadcastAll); ok {
		return checkData(ba.Data)
	}
	return nil
}

// checkData checks a message's data: a JSON value other than null, in
// UTF-8. json.Valid takes any bytes inside a string, but a subscriber's
// browser must fail a WebSocket whose text frame is not UTF-8, and would
// meet the message again at each resume.
func checkData(data json.RawMessage) error {
	if !domain.HasData(data) || !json.Valid(data) {
		return domain.Errorf(domain.CodeBadRequest, "message data must be a JSON value other than null")
	}
	if !utf8.Valid(data) {
		return domain.Errorf(domain.CodeBadRequest, "message data is not valid UTF-8")
	}
	if err := domain.CheckNumbers(data); err != nil {
		return fmt.Errorf("message data: %w", err)
	}
	return nil
}

func (l *Log) writer() {
	defer l.wg.Done()
	defer close(l.stopped)
	batch := make([]*appendReq, 0, 64)
	var probe *time.Timer // while commits fail for what a probe tests
	for {
		var first *appendReq
		var probed <-chan time.Time
		if _, err := l.failing.State(); err != nil && l.probeable {
			if probe == nil {
				probe = time.NewTimer(probeEvery)
			}
			probed = probe.C
		} else {
			probe = nil
		}
		select {
		case first = <-l.reqs:
		case <-probed:
			probe = nil
			if len(l.reqs) == 0 { // appends first: they test the commits too
				l.probe()
			}
			continue
		case <-l.closed:
			// Commit whatever is still queued, in batches as any, then
			// stop.
			for {
				if batch = l.gather(batch[:0], 0); len(batch) == 0 {
					return
				}
				l.commit(batch)
			}
		}
		// Let appenders that are ready to run queue theirs first: on a
		// busy server the batch grows for free (a commit costs about the
		// same for one event as for many); on an idle one this returns
		// at once.
		runtime.Gosched()
		batch = l.gather(append(batch[:0], first), len(first.facts))
		l.commit(batch)
	}
}

// gather adds to batch, whose requests hold n facts, the requests queued
// now, until the batch holds MaxBatch facts or more (a request is never
// split).
func (l *Log) gather(batch []*appendReq, n int) []*appendReq {
	for n < l.cfg.MaxBatch {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
			n += len(r.facts)
		default:
			return batch
		}
	}
	return batch
}

// probeEvery is how often the writer, while its commits fail for what a
// probe tests (probeableFailure) and none is asked of it, tries a write
// of its own: an idle
// server whose disk has room again, or whose lock another process let go,
// would otherwise be failing until a client's append, which a load
// balancer that took it out for failing never sends.
const probeEvery = 2 * time.Second

// probe commits a write of the writer's own and leaves nothing of it: a
// 4 KiB row of settings (a leaf and an overflow page), deleted in the
// same transaction, whose pages the commit writes. It takes the write
// lock, writes the WAL and may take a page, as an append does, so it
// fails as an append does for what passes (a full disk, a lock, an I/O
// error): it is run only for those (probeable). It ends the log's failure
// when it commits, and records why when it fails.
func (l *Log) probe() {
	err := func() error {
		tx, err := l.wdb.BeginTx(l.done, nil) // BEGIN IMMEDIATE (_txlock)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(l.done, `INSERT OR REPLACE INTO settings (key, value) VALUES ('writer_probe', hex(zeroblob(2048)))`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(l.done, `DELETE FROM settings WHERE key = 'writer_probe'`); err != nil {
			return err
		}
		return tx.Commit()
	}()
	switch {
	case err == nil:
		if l.failing.Works() {
			l.log.Info("event log commits again (a probe of the writer's)")
		}
	case storageFailure(err):
		l.fail(err)
	case l.done.Err() == nil:
		l.log.Warn("the writer's probe failed", "err", err)
	}
}

// fail records a commit's failure for the log's health. probeable says
// whether every failure since the last success was one the probe tests
// (a failure of a table or a page, a damaged schema, is not: the probe's
// row would pass where the appends fail).
func (l *Log) fail(err error) {
	if l.failing.Fail(err) {
		l.probeable = true
	}
	if !probeableFailure(err) {
		l.probeable = false
	}
}

// commit writes a batch in one transaction. If the batch fails, each
// request is retried alone so that one that cannot be written (a
// constraint, a value too big; or one that touches a damaged page, or
// does not fit a full disk where a smaller commit may) fails only itself.
// But a failure of the whole file that each retry would meet again (the
// write lock held by another process past the wait, a file made read-only
// or that cannot be opened, no permission) fails the batch at once: one
// behind a lock held elsewhere waits out busyWaitMS, so that a batch of 50
// took four minutes to fail, holding every append queued behind it.
func (l *Log) commit(batch []*appendReq) {
	start := time.Now()
	recs, err := l.writeTx(batch)
	if err != nil && len(batch) > 1 && !wholeFileFailure(err) {
		// One append that cannot be written must not fail the others.
		l.log.Warn("event log batch failed; trying its appends one at a time", "appends", len(batch), "err", err)
		for _, r := range batch {
			l.commit([]*appendReq{r})
		}
		return
	}
	if err == nil {
		logMetrics.commitSeconds.Observe(time.Since(start).Seconds())
		logMetrics.events.Add(float64(len(recs)))
		// The records are in batch order: one per fact.
		i := 0
		for _, r := range batch {
			for j, m := range r.msgs {
				m.Payload = recs[i+j].payload
				stamp(m, r.events[j])
			}
			i += len(r.facts)
		}
	}
	if err != nil {
		logMetrics.failedAppends.Add(float64(len(batch))) // each append answered with the error
		l.log.Error("event log append failed", "err", err)
		if storageFailure(err) {
			l.fail(err)
		}
		// Nothing was assigned: the facts go back as they came, so that
		// the caller may try the same ones again.
		for _, r := range batch {
			for _, f := range r.facts {
				if mb, ok := f.(*domain.MessageBroadcast); ok {
					mb.Offset, mb.Epoch = 0, ""
				}
			}
		}
	} else {
		// Before the appenders hear of it: once Append returns, Head and
		// the Subscribers include what it committed.
		l.tail.push(recs)
		l.checkpointSoon()
		if l.failing.Works() {
			l.log.Info("event log commits again")
		}
	}
	for _, r := range batch {
		r.err = classify(err)
		close(r.done)
	}
}

func (l *Log) writeTx(batch []*appendReq) (recs []*record, err error) {
	ctx := context.Background()
	tx, err := l.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	insEvent := tx.StmtContext(ctx, l.stmts.insEvent)
	defer insEvent.Close()
	var insMsg *sql.Stmt
	// Commit times never go backwards, even if the wall clock does, so
	// that history by time and history by offset agree.
	now := l.commitTime(time.Now())
	seq := l.nextSeq
	touched := map[chanKey]*chanHead{}
	n := 0
	for _, r := range batch {
		n += len(r.facts)
	}
	recs = make([]*record, 0, n)
	for _, r := range batch {
		r.events = make([]domain.Event, len(r.facts))
		for i, f := range r.facts {
			var offset sql.NullInt64
			var payload, full []byte
			if mb, ok := f.(*domain.MessageBroadcast); ok {
				h, err := l.headFor(ctx, tx, touched, mb.App, mb.Channel)
				if err != nil {
					return nil, err
				}
				h.head++
				mb.Offset, mb.Epoch = h.head, h.epoch
				offset = sql.NullInt64{Int64: int64(h.head), Valid: true}
				if insMsg == nil {
					insMsg = tx.StmtContext(ctx, l.stmts.insMsg)
					defer insMsg.Close()
				}
				if _, err := insMsg.Exec(mb.App, mb.Channel, h.head, seq, now, []byte(mb.Data)); err != nil {
					return nil, fmt.Errorf("insert message: %w", err)
				}
				bare := *mb
				bare.Data = nil
				if payload, err = json.Marshal(&bare); err != nil {
					return nil, err
				}
				full = withData(payload, mb.Data)
			} else {
				if cs, ok := f.(*domain.ChannelSubscribed); ok {
					// Stamped with the head here, in commit order, so that
					// the projections need not look it up.
					head, epoch, err := l.peekHead(ctx, tx, touched, cs.App, cs.Channel)
					if err != nil {
						return nil, err
					}
					cs.Head, cs.Epoch = &head, epoch
				}
				if payload, err = json.Marshal(f); err != nil {
					return nil, err
				}
				full = payload
			}
			app, channel, client := f.Scope()
			if _, err := insEvent.Exec(seq, r.uuids[i], f.EventName(), app, channel, client, offset, now, payload); err != nil {
				return nil, fmt.Errorf("insert event: %w", err)
			}
			ev := domain.Event{Seq: seq, Time: now, Fact: f}
			r.events[i] = ev
			recs = append(recs, &record{ev: ev, uuid: r.uuids[i], payload: full})
			seq++
		}
	}
	// A channel's head is the newest offset in messages (the view
	// channel_heads), so only a new channel writes its row here.
	for k, h := range touched {
		if !h.isNew {
			continue
		}
		if _, err = tx.StmtContext(ctx, l.stmts.insChannel).Exec(k.app, k.channel, h.epoch, h.head, now); err != nil {
			return nil, fmt.Errorf("create channel: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	l.nextSeq, l.lastTime = seq, now
	for k, h := range touched {
		h.isNew = false
		l.heads[k] = h
	}
	l.trimHeads()
	return recs, nil
}

// loadHeads fills the head cache with every channel in the file, if they
// are no more than it holds (counting at most one row more than that), and
// then says it holds them all (allHeads).
func (l *Log) loadHeads(ctx context.Context) error {
	var n int
	err := l.wdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM channels LIMIT ?)`, l.cfg.HeadCache+1).Scan(&n)
	if err != nil {
		return fmt.Errorf("count channels: %w", err)
	}
	if n > l.cfg.HeadCache {
		return nil
	}
	rows, err := l.wdb.QueryContext(ctx, loadHeadsQuery)
	if err != nil {
		return fmt.Errorf("read channel heads: %w", err)
	}
	defer rows.Close()
	heads := make(map[chanKey]*chanHead, n)
	for rows.Next() {
		var k chanKey
		h := &chanHead{}
		if err := rows.Scan(&k.app, &k.channel, &h.epoch, &h.head); err != nil {
			return fmt.Errorf("read channel heads: %w", err)
		}
		heads[k] = h
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read channel heads: %w", err)
	}
	// The writer has not started: nothing was added since the count.
	l.heads, l.allHeads = heads, true
	return nil
}

// trimHeads keeps the head cache within Config.HeadCache: past it, it
// drops entries until half is left, in the map's order, which is as good
// as random. Every cached head is committed to the file, so a dropped one
// is read back when it is next needed; from then on, a channel the cache
// does not hold may have history (allHeads).
func (l *Log) trimHeads() {
	if len(l.heads) <= l.cfg.HeadCache {
		return
	}
	l.allHeads = false
	drop := len(l.heads) - l.cfg.HeadCache/2
	for k := range l.heads {
		if drop == 0 {
			break
		}
		delete(l.heads, k)
		drop--
	}
}

// headFor returns the batch's working copy of a channel's head, loading it
// from the cache or the file, or starting a new history stream.
func (l *Log) headFor(ctx context.Context, tx *sql.Tx, touched map[chanKey]*chanHead, app, channel string) (*chanHead, error) {
	k := chanKey{app, channel}
	if h, ok := touched[k]; ok {
		return h, nil
	}
	if h, ok := l.heads[k]; ok {
		c := *h
		touched[k] = &c
		return &c, nil
	}
	var h *chanHead
	if !l.allHeads {
		var err error
		if h, err = l.readHead(ctx, tx, k); err != nil {
			return nil, err
		}
	}
	if h == nil {
		h = &chanHead{epoch: NewEpoch(), isNew: true}
	}
	touched[k] = h
	return h, nil
}

// readHead reads a channel's head from the file: nil if it has none.
func (l *Log) readHead(ctx context.Context, tx *sql.Tx, k chanKey) (*chanHead, error) {
	h := &chanHead{}
	err := tx.StmtContext(ctx, l.stmts.readHead).QueryRowContext(ctx, k.app, k.channel).Scan(&h.epoch, &h.head)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read channel head: %w", err)
	}
	return h, nil
}

// peekHead returns a channel's head and epoch as of this point of the
// batch without starting a history stream: 0 and "" for a channel that
// has none yet.
func (l *Log) peekHead(ctx context.Context, tx *sql.Tx, touched map[chanKey]*chanHead, app, channel string) (uint64, string, error) {
	k := chanKey{app, channel}
	if h, ok := touched[k]; ok {
		return h.head, h.epoch, nil
	}
	if h, ok := l.heads[k]; ok {
		return h.head, h.epoch, nil
	}
	if l.allHeads {
		return 0, "", nil
	}
	h, err := l.readHead(ctx, tx, k)
	if err != nil || h == nil {
		return 0, "", err
	}
	// Not in touched, so this batch has not changed the row: the value
	// is committed and can be kept.
	l.heads[k] = h
	l.trimHeads()
	return h.head, h.epoch, nil
}

// NewEpoch returns a fresh epoch name: 8 random bytes in hex.
func NewEpoch() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// withData returns the JSON object obj with a "data" member appended.
func withData(obj []byte, data json.RawMessage) []byte {
	out := make([]byte, 0, len(obj)+len(data)+8)
	out = append(out, obj[:len(obj)-1]...)
	out = append(out, `,"data":`...)
	out = append(out, data...)
	return append(out, '}')
}

// Setting reads a server setting; ok is false when it is not set.
func (l *Log) Setting(ctx context.Context, key string) (value string, ok bool, err error) {
	err = l.rdb.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return value, err == nil, err
}

// SetSettingIfAbsent stores a setting unless it exists, and returns the value
// now stored.
func (l *Log) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	if l.wdb == nil {
		return "", errors.New("database is open read-only")
	}
	if _, err := l.wdb.ExecContext(ctx, `INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)`, key, value); err != nil {
		return "", fmt.Errorf("store setting %s: %w", key, err)
	}
	var v string
	err := l.wdb.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	return v, err
}
