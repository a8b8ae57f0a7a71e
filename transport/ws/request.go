package ws

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/fazt-realtime/fazt/domain"
)

// request is any client frame.
type request struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Channel string          `json:"channel"`
	Offset  *int64          `json:"offset"`
	Last    *int64          `json:"last"`
	Since   *int64          `json:"since"`
	Epoch   string          `json:"epoch"`
	Token   string          `json:"token"`
	Data    json.RawMessage `json:"data"`
}

// decodeRequest parses one client frame. On error it still returns the
// request's id when one could be read, so that the error can echo it. It
// never panics, whatever the input (see FuzzDecodeRequest).
func decodeRequest(body []byte, maxDepth int) (req request, err error) {
	if err := domain.CheckDepth(body, maxDepth); err != nil {
		return request{ID: peekID(body)}, err
	}
	// Unmarshal, unlike a Decoder, refuses anything after the object and
	// allocates no reader and buffer of its own.
	if err := json.Unmarshal(body, &req); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "after top-level value") {
			msg = "one JSON object per frame"
		}
		return request{ID: peekID(body)}, domain.Errorf(domain.CodeBadRequest, "malformed frame: %s", msg)
	}
	if !validID(req.ID) {
		return request{}, domain.Errorf(domain.CodeBadRequest, "id must be a number or a string")
	}
	if req.Type == "" {
		return req, domain.Errorf(domain.CodeBadRequest, "frame has no type")
	}
	return req, nil
}

func peekID(body []byte) json.RawMessage {
	var r struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &r) != nil || !validID(r.ID) {
		return nil
	}
	return r.ID
}

func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return true
	}
	if id[0] == '"' {
		return json.Valid(id)
	}
	_, err := strconv.ParseFloat(string(id), 64)
	return err == nil
}
