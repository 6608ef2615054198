# Shared by the benchmark scripts in tests/bench/ (sourced, not run).

# The proxies run with glibc's per-thread malloc cache raised from 7 to 128
# freed chunks of each size, as the image runs gantry-proxy (the Dockerfile's
# ENV, docs/ARCHITECTURE.md "Memory"): every proxy in a bench gets it alike.
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.tcache_count=128}

# wait_port HOST:PORT | PORT: until something accepts connections there (10 s at most).
wait_port() {
  local hp=$1
  case "$hp" in *:*) ;; *) hp="127.0.0.1:$hp" ;; esac
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench: nothing listens on $hp" >&2
  return 1
}

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks (0 when gone).
cpu_ticks() { [ -n "${1:-}" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
