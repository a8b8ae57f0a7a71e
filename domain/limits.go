package domain

// Limits bound what one app's clients may do. Zero fields take the defaults.
type Limits struct {
	// MaxMessageBytes caps an inbound WebSocket frame and a message's data.
	MaxMessageBytes int `json:"max_message_bytes,omitempty"`
	// MaxSubscriptions caps the channels one connection may join.
	MaxSubscriptions int `json:"max_subscriptions,omitempty"`
	// MaxConnections caps the app's open connections (0: no cap).
	MaxConnections int `json:"max_connections,omitempty"`
}

// Default limits.
const (
	DefaultMaxMessageBytes  = 64 << 10
	DefaultMaxSubscriptions = 128
)

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxSubscriptions <= 0 {
		l.MaxSubscriptions = DefaultMaxSubscriptions
	}
	return l
}
