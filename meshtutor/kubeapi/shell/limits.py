"""What one ``kubectl exec`` session may use: limits a lesson or a workshop never meets.

A pod's shell runs inside meshtutor's own event loop, shared by the whole sandbox (and, in a
classroom, by every attendee's sandbox), so each resource a script can grow is bounded. Each
limit fails the way the real container fails when it runs out of the same thing: a pids cgroup
(``can't fork``), memory (``out of memory``), a full disk (``No space left on device``).
Modules read these names at call time (``limits.MAX_STEPS``), so tests can lower them.
"""

from __future__ import annotations

# Simple commands and loop rounds one session may run. `while true; do curl …; sleep 1; done`
# runs about 3 a second: the limit is days away. A busy loop (`while :; do :; done`) meets it
# after a few seconds of CPU instead of spinning forever on the sandbox's event loop.
MAX_STEPS = 1_000_000
# Every this many steps the shell sleeps as long as they took, up to STEP_PAUSE seconds, so a
# busy loop takes at most half of a core from the sandbox; loops that wait on the network
# barely notice.
STEPS_PER_PAUSE = 1_000
STEP_PAUSE = 0.1

# Programs, pipeline stages and background jobs alive at once (a container's pids limit).
MAX_PROCESSES = 64
# Shells inside shells: `sh -c`, `$( )`, subshells, eval (each is a process in a real pod).
MAX_DEPTH = 24
# Compound commands nested in one script: the parser is recursive.
MAX_NESTING = 50

# Bytes a `$( … )` may capture, and bytes in all shell variables together.
MAX_SUBSTITUTION = 1024 * 1024
MAX_VARIABLES = 1024 * 1024
# The per-session in-memory /tmp and home directory: total bytes and number of files.
MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 64
# Bytes buffered in one pipe before its writer waits (Linux's default pipe size).
PIPE_CAPACITY = 64 * 1024
# Bytes of stdin handed to curl (-d @-, -T -) and read by `read`/`grep` for one line.
MAX_STDIN = 1024 * 1024
# Bytes a program that must see its whole input first (sort, base64, tail) may hold; tail
# keeps the last lines within it, sort and base64 say `out of memory` past it.
MAX_BUFFER = 8 * 1024 * 1024
# Width or precision of one printf conversion (`printf '%1000000000s'`).
MAX_FIELD_WIDTH = 64 * 1024
# Interactive line length: busybox's FEATURE_EDITING_MAX_LEN in Alpine's build.
MAX_LINE = 1024
# Script text one session may be given (`sh -c`, a script file, or typed lines): Linux's
# MAX_ARG_STRLEN, the longest single argument exec accepts.
MAX_SCRIPT = 128 * 1024

# `sleep` sleeps at most this long per call (`sleep infinity` included); any sleep is
# cancelled at once when the session ends.
MAX_SLEEP = 3600.0
# How long nc, wget and openssl wait for a connection when not told (-w, -T): about what Linux
# waits for a SYN that is dropped (tcp_syn_retries=6), so a NetworkPolicy drop hangs as long.
CONNECT_TIMEOUT = 130.0
