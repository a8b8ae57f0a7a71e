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
	if err := membershipEvents(ctx, h, 0, head, func(ev domain.Event) error { return m.Apply(ctx, ev) }, nil); err != nil {
		return fmt.Errorf("restore membership: %w", err)
	}
	m.StartAt(head)
	return nil
}

// membershipEvents calls apply with each membership event after after, up
// to and including upto, read from h in pages, and page, when set, with
// the sequence reached after each page.
func membershipEvents(ctx context.Context, h domain.History, after, upto uint64, apply func(domain.Event) error, page func(seq uint64)) error {
	const pageSize = 5000
	// after grows with every page and a short page ends the loop.
	for after < upto {
		evs, err := h.Events(ctx, domain.AuditQuery{Types: MembershipEvents, After: after, Limit: pageSize})
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.Seq > upto {
				return nil
			}
			if err := apply(ev); err != nil {
				return fmt.Errorf("at event %d: %w", ev.Seq, err)
			}
		}
		if len(evs) == 0 {
			break
		}
		after = evs[len(evs)-1].Seq
		if page != nil {
			page(min(after, upto))
		}
		if len(evs) < pageSize {
			break
		}
	}
	return nil
}

// StartAt marks every event up to and including seq as applied. A server
// starts its membership empty this way at the log's head: no session of
// the previous run survives, they are closed from the subscriptions read
// model (OpenSessions) before any client connects, and their closing
// events change nothing here.
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
