package domain

import "context"

// ChannelSummary is a channel as the channel listings show it: its history
// stream and its subscribers now.
type ChannelSummary struct {
	ChannelInfo
	Subscribers int
}

// ListChannels lists a page of an app's channels, those with history or
// subscribers, by name: at most limit, named after after. A full page may
// have more after it; pass its last name as the next after.
//
// Each source gives its own first limit names after after, and the page is
// the first limit names of the two merged: a channel on the page is among
// the first limit names of each source that has it, so its history and its
// subscriber count are both there.
func ListChannels(ctx context.Context, h History, m Members, app, after string, limit int) ([]ChannelSummary, error) {
	infos, err := h.Channels(ctx, app, after, limit)
	if err != nil {
		return nil, err
	}
	live := m.Channels(app, after, limit)
	out := make([]ChannelSummary, 0, min(limit, len(infos)+len(live)))
	for len(out) < limit && (len(infos) > 0 || len(live) > 0) {
		switch {
		case len(live) == 0 || len(infos) > 0 && infos[0].Channel < live[0].Channel:
			out = append(out, ChannelSummary{ChannelInfo: infos[0]})
			infos = infos[1:]
		case len(infos) == 0 || live[0].Channel < infos[0].Channel:
			// Subscribed, never broadcast to.
			out = append(out, ChannelSummary{ChannelInfo: ChannelInfo{App: app, Channel: live[0].Channel, First: 1}, Subscribers: live[0].Subscribers})
			live = live[1:]
		default:
			out = append(out, ChannelSummary{ChannelInfo: infos[0], Subscribers: live[0].Subscribers})
			infos, live = infos[1:], live[1:]
		}
	}
	return out, nil
}
