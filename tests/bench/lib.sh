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

# start_nginx_backend DIR HOST:PORT CPU: one nginx worker pinned to CPU serving
# DIR/www/small ("ok\n", 3 bytes) on HOST:PORT with keep-alive for as long as
# a bench runs; its files under DIR/backend. Its pid goes into the caller's
# `pids` array (what the caller's cleanup kills) before the wait, and the
# function returns once it listens.
start_nginx_backend() {
  local dir=$1 addr=$2 cpu=$3
  mkdir -p "$dir/www" "$dir/backend"
  printf 'ok\n' >"$dir/www/small"
  chmod 755 "$dir" "$dir/www"
  chmod 644 "$dir/www/small"
  cat >"$dir/backend/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/backend/nginx.pid;
error_log $dir/backend/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  open_file_cache max=16;
  default_type application/octet-stream;
  server { listen $addr reuseport; root $dir/www; }
}
CONF
  taskset -c "$cpu" nginx -c "$dir/backend/nginx.conf" -p "$dir/backend" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$addr"
}
