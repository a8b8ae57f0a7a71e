package domain

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a protocol error code, sent to clients in `error` frames and in
// server API error bodies.
type Code string

// Codes that reach clients. The set is part of the wire contract.
const (
	CodeBadRequest           Code = "bad_request"
	CodeUnknownType          Code = "unknown_type"
	CodeInvalidChannel       Code = "invalid_channel"
	CodeNotAllowed           Code = "not_allowed"
	CodeTooLarge             Code = "too_large"
	CodeRateLimited          Code = "rate_limited"
	CodeTooManySubscriptions Code = "too_many_subscriptions"
	CodeNotFound             Code = "not_found"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodeUnauthorized         Code = "unauthorized"
	CodeUnavailable          Code = "unavailable"
	CodeInternal             Code = "internal"
)

// HTTPStatus is the status of an HTTP answer that carries code c: the
// server API's, a refused WebSocket upgrade's, a JS handler's, an app's
// files'.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeBadRequest, CodeUnknownType, CodeInvalidChannel:
		return http.StatusBadRequest
	case CodeNotAllowed:
		return http.StatusForbidden
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited, CodeTooManySubscriptions:
		return http.StatusTooManyRequests
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Error is an error with a protocol code. Use errors.As to find it in a chain.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrNotAllowed) matches any not_allowed error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is; they match any error of their code.
var (
	ErrBadRequest     = &Error{Code: CodeBadRequest}
	ErrInvalidChannel = &Error{Code: CodeInvalidChannel}
	ErrNotAllowed     = &Error{Code: CodeNotAllowed}
	ErrTooLarge       = &Error{Code: CodeTooLarge}
	ErrNotFound       = &Error{Code: CodeNotFound}
	ErrUnavailable    = &Error{Code: CodeUnavailable}
	ErrTooManySubs    = &Error{Code: CodeTooManySubscriptions}
)

// CodeOf returns the protocol code of err: the code of the first *Error in
// its chain, or internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// FactError is a Log's error for one of the facts given to Append that
// it refuses before committing any (data that is not UTF-8, a number past
// a double's range): Index is the fact's place among those given, so that
// a batch can say which of its messages was refused.
type FactError struct {
	Index int
	Err   error
}

func (e *FactError) Error() string { return e.Err.Error() }

// Unwrap gives the error the refused fact's code.
func (e *FactError) Unwrap() error { return e.Err }

// BatchError names the message of a batch that err, an Append's error,
// refused, as messages[i], with err's code; other errors are returned as
// they are.
func BatchError(err error) error {
	var fe *FactError
	if errors.As(err, &fe) {
		return Errorf(CodeOf(fe.Err), "messages[%d]: %v", fe.Index, fe.Err)
	}
	return err
}
