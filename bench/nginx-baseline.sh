#!/bin/sh
# The file-system baseline of `kubestorage bench --mode http`: Debian's nginx serving
# DIR/www (ext4 or whatever DIR is on) with WebDAV PUT, on loopback only.
#
#   bench/nginx-baseline.sh start DIR PORT   # installs nginx-light if missing, starts it
#   bench/nginx-baseline.sh stop DIR         # stops it by the PID in DIR/nginx.pid
#
# Then: kubestorage bench all --mode http --endpoint http://127.0.0.1:PORT ...
set -eu
cmd=${1:-}
dir=${2:-}
port=${3:-8080}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

nginx_bin() {
  for b in /usr/sbin/nginx "$(command -v nginx 2>/dev/null || true)"; do
    [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return 0; }
  done
  return 1
}

case "$cmd" in
start)
  if ! bin=$(nginx_bin); then
    echo "installing nginx-light (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light >&2
    bin=$(nginx_bin)
  fi
  if ! "$bin" -V 2>&1 | grep -q http_dav_module; then
    echo "$bin has no http_dav_module; install Debian's nginx or nginx-light" >&2
    exit 1
  fi
  # Debian's package starts a system nginx on :80; it is not ours and is left alone.
  mkdir -p "$dir/www" "$dir/tmp"
  user_line=
  if [ "$(id -u)" = 0 ]; then
    # Workers drop to www-data: it must own the served tree and the upload temp dir.
    chown -R www-data:www-data "$dir/www" "$dir/tmp"
    chmod a+x "$dir"
    user_line="user www-data;"
  fi
  cat > "$dir/nginx.conf" <<CONF
$user_line
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  server {
    listen 127.0.0.1:$port;
    root $dir/www;
    client_max_body_size 10m;
    client_body_buffer_size 512k;
    location / {
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
CONF
  "$bin" -t -q -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log"
  "$bin" -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log"
  for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$dir/nginx.pid" ] && break; sleep 0.2; done
  echo "nginx (PID $(cat "$dir/nginx.pid")) serving $dir/www on http://127.0.0.1:$port ($(df -T "$dir" | awk 'NR==2 {print $2}'))"
  ;;
stop)
  if [ -s "$dir/nginx.pid" ]; then
    pid=$(cat "$dir/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
    rm -f "$dir/nginx.pid"
    echo "nginx stopped"
  else
    echo "no $dir/nginx.pid: not running" >&2
  fi
  ;;
*)
  echo "usage: $0 start|stop DIR [PORT]" >&2
  exit 2
  ;;
esac
