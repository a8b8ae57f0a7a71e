package projections

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
)

// Restore brings a fresh membership up to the log's head: it applies every
// membership event up to and including head, read from h in pages, and
// records head as applied. Broadcasts are skipped: there is no one to
// deliver old ones to. Live events then come through Handle. It reads the
// whole log; `fazt rebuild` uses it to check the stored read model against
// a membership computed from the start.
func (m *Membership) Restore(ctx context.Context, h domain.History, head uint64) error {
	var after uint64
	for after < head {
		evs, err := h.Events(ctx, domain.AuditQuery{Types: MembershipEvents, After: after, Limit: 5000})
		if err != nil {
			return fmt.Errorf("restore membership: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if ev.Seq > head {
				break
			}
			if err := m.Apply(ctx, ev); err != nil {
				return fmt.Errorf("restore membership at %d: %w", ev.Seq, err)
			}
		}
		after = evs[len(evs)-1].Seq
	}
	if head > m.applied.Load() {
		m.markApplied(head)
	}
	return nil
}

// StartAt marks every event up to and including seq as applied to a
// membership that has applied none: for a server start, where no session
// of the previous run survives. Those sessions are closed from the
// subscriptions read model (OpenSessions) before any client connects, and
// their closing events change nothing here.
func (m *Membership) StartAt(seq uint64) {
	if seq > m.applied.Load() {
		m.markApplied(seq)
	}
}

// Handle is the projection's Watermill handler: it applies one committed
// event from the log's Subscriber. An error nacks the message, which the
// Subscriber redelivers.
func (m *Membership) Handle(msg *message.Message) error {
	ev, err := events.EventOf(msg)
	if err != nil {
		return err
	}
	return m.Apply(msg.Context(), ev)
}
