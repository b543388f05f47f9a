// Package api is the wire protocol between crbpf's daemon and its clients
// (the crbpf CLI, the Go client package, the C helper and any program that
// can write a line of JSON to a unix socket). docs/daemon.md documents it
// for other languages.
//
// # Protocol (version 1)
//
// A client connects to the daemon's unix stream socket and writes one
// Request as a single line of JSON. The daemon answers with zero or more
// progress lines (Response.Event set, e.g. "round") and then one final line
// (Event empty) that carries OK and either the result or Error and Code. A
// restart with Wait keeps the connection open after the final line for one
// more line, Event "exit", when the restored process exits. A connection
// may carry several requests one after the other.
//
// File descriptors (a restarted process's fds 0-2) travel with the request
// line as SCM_RIGHTS ancillary data.
//
// The daemon identifies the client by SO_PEERCRED; nothing in a request is
// trusted for that.
//
// The package holds no state and starts no goroutine.
package api
