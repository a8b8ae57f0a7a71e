// Package domain is the language of Fazt realtime: apps, channel names and
// their rules, client ids, offsets and epochs, the facts recorded in the event
// log, the errors that reach clients, and the ports the core needs from
// storage. It imports nothing but the standard library.
package domain
