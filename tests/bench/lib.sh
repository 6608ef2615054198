# Shared by the benchmark scripts in tests/bench/ (sourced, not run).

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
