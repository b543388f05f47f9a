// Package crid hands out checkpoint ids (CRIDs): positive integers that
// are strictly increasing and never handed out twice for one state
// directory, across goroutines, processes, crashes and reboots.
//
// # State
//
// The package owns three files in the state directory (DefaultStateDir,
// or CRBPF_STATE_DIR, see StateDirFromEnv):
//
//	crid       the last id handed out, decimal text and a newline;
//	           missing means 0 (no id handed out yet)
//	crid.lock  an empty file, flocked by Next; never removed
//	crid.tmp   the next value while Next writes it; may be left by a crash
//
// A Counter holds only the directory path: no open files, no goroutines,
// nothing to close. Each Next opens and closes what it needs, so a
// Counter may be shared by goroutines and many processes may use the same
// state directory at once.
//
// # Why ids are never reused
//
// Next does, holding an exclusive flock on crid.lock:
//
//  1. read crid: n (missing: 0; anything but a plain decimal number is an
//     error, never a reset to 0, because a reset would reuse ids);
//  2. write n+1 to crid.tmp and fsync it;
//  3. rename crid.tmp over crid and fsync the directory;
//  4. unlock (close) and return n+1.
//
// Exclusion: every Next runs steps 1-3 under the same exclusive flock, so
// no two calls read the same n. The flock is tied to the open file, which
// the kernel closes when a process dies, so a crashed holder never leaves a
// stale lock. (flock is advisory: everything that changes crid must go
// through this package, on a local file system.)
//
// Crashes: rename replaces crid atomically, so crid always holds a
// complete number, old or new, never a partial write; crid.tmp is fsynced
// before the rename, so after a power loss the new name cannot point at
// empty data. An id is returned only after step 3's directory fsync has
// made the new value durable. So for every id a caller has seen, crid
// holds at least that id, whatever crashes later, and every later Next
// returns a larger one. A crash before step 3 completes loses nothing
// handed out: its id was never returned and may be handed out again, which
// is harmless because nobody used it. A stale crid.tmp is simply
// overwritten by the next Next.
package crid
