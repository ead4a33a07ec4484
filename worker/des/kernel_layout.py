"""The layout of the compiled DES kernel's arrays: column and status numbers shared by its modules.

See :mod:`simfleet.worker.des.kernel` for what each array holds and :mod:`simfleet.worker.des.compiled` for how they
are built.
"""

from __future__ import annotations

FLUSH_EVERY = 4096
"""Latencies folded into a sketch per batch (:data:`simfleet.worker.des.engine.FLUSH_EVERY`)."""
WARMUP, ARRIVAL, HORIZON, TIMEOUT, RETRY = range(5)
KIND_SHIFT = 1 << 48
"""Event heap entries are ordered by (time, kind * KIND_SHIFT + seq): the engine's (time, kind, seq)."""
EV_COLS = 4
"""ev_ki columns: key, payload, stamp (a TIMEOUT's uid, a RETRY's request id), packed retry (only the first two in a
scenario that cannot fail)."""

# Statuses of run_events.
(DONE, PAUSED, NEED_ARRIVALS, NEED_WORK, FLUSH, GROW, MAX_EVENTS, NEED_DECISIONS, NEED_ATTRIBUTES, GROW_HEAPS,
 GROW_EVENTS, GROW_FAILS) = range(12)  # fmt: skip

# Global floats (gf) and integers (gi).
NOW, SYS_INT, SYS_T, HORIZON_S, WARMUP_S, LIMIT = range(6)
N_GF = 6
(SEQ, EVENTS, N_SYS, FINISHED, STOPPED, UNSTABLE, DRAIN, MAX_EVENTS_I, MAX_IN_FLIGHT, EV_N, REQ_FREE_N, TOOL_FREE_N,
 STATUS_ARG, HAS_START, HAS_END, MAX_NODES, READY_N, STREAMS_V2, FALLIBLE, UID, RID, ATT_BOUND,
 DEC_MULT) = range(23)  # fmt: skip
N_GI = 23
"""STREAMS_V2: whether some type draws decisions or attributes (else _room skips their check). FALLIBLE: the
scenario can fail. UID, RID: the next attempt uid and request id. ATT_BOUND: the most attempts one node can make
(its retries and its fallback chain's; 1 without failures). DEC_MULT: decisions a node can draw (1 + ATT_BOUND with
failures, else 1)."""
UNSTABLE_LOAD, UNSTABLE_IN_FLIGHT = 1, 2
# Requests (req_i; req_f holds the arrival time) and tools (tool_i).
Q_TYPE, Q_LEFT, Q_COUNTED, Q_DAG, Q_DEAD, Q_RID = range(6)
Q_WAITING = 6
"""req_i[rid, Q_WAITING + node]: the predecessors the node still waits for; then, at Q_WAITING + MAX_NODES + node,
the node's live attempt (-1 for none; with failures only)."""
T_REQ, T_NODE, T_TMPL, T_PARTS, T_SPACE_POS, T_ATTEMPT, T_FALLBACK, T_FAILS, T_UID, T_POL = range(10)
N_TI = 10
# Request types (type_f, type_i), nodes (node_i), templates (tmpl_i), counters (counts).
Y_WEIGHT, Y_MEAN_GAP = range(2)
Y_PRIORITY, Y_ARRIVAL, Y_DAG0, Y_NDAGS, Y_DECIDES, Y_NATTRS, Y_ATTR_RANDOM = range(7)
N_YI = 7
ARR_DETERMINISTIC, ARR_POISSON, ARR_PROCESS = range(3)
"""Y_ARRIVAL: a constant gap, unit exponentials times the mean gap, or absolute times of an arrival process."""
D_NODES, D_OFFSET = range(2)
"""dag_i: the DAG's nodes, and the position of its first node among its type's node keys."""
A_COL, A_RANDOM = range(2)
N_TMPL, N_PREDS = range(2)
ATTEMPTS, FAILED, TIMED_OUT, FALLBACKS, SKIPPED, BRANCH_SKIPPED = range(6)
"""Columns of node_fig (simfleet.shared.messages.des.NODE_FIGURES)."""
K_PARTS, K_SPACES, K_RANDOM = range(3)
C_INFLIGHT, C_COUNTED_INFLIGHT, C_ARRIVALS, C_FAILED, C_TIMED_OUT = range(5)
COMPLETED_OK, FAILED_OUTCOME, TIMED_OUT_OUTCOME = range(3)
POS, LEN = range(2)
P_FAIL, P_TIMEOUT = range(2)
P_HAS_TIMEOUT, P_RETRIES, P_ON_FAILURE, P_FALLBACK = range(4)
ON_FAIL, ON_SKIP, ON_FALLBACK = range(3)
