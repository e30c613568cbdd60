#!/bin/sh
# Assemble the exact root filesystem of the FROM-scratch image into <dir>.
#
#   scripts/scratch-rootfs.sh <dir>
#
# Contents:
#   /app/agentos                          the compiled binary (dist/agentos, or $AGENTOS_BINARY)
#   <loader> + every library `ldd` lists  copied to the same paths, symlinks dereferenced
#   /etc/ssl/certs/ca-certificates.crt    CA bundle ($CA_BUNDLE, default the host's)
#   /etc/passwd /etc/group                root + agentos (65532:65532)
#   /etc/nsswitch.conf /etc/hosts         so glibc resolves "localhost" without a resolver
#   /tmp (1777)  /proc (empty mount point)  /data (65532:65532, 0750)
#
# Idempotent: everything but /data is removed and rebuilt on each run; /data
# keeps its contents (ownership is re-applied). Ownership needs root; as
# non-root the tree is built with a warning and the owner is left as-is.
# Needs: sh, ldd, cp, install, mkdir, chmod (chown/mountpoint when available).
set -eu

die() { echo "scratch-rootfs: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 <dir>"
ROOT=$1
case "$ROOT" in
  "" | "/") die "refusing to use '$ROOT' as rootfs" ;;
esac

REPO=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
BIN=${AGENTOS_BINARY:-$REPO/dist/agentos}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
APP_UID=65532
APP_GID=65532

[ -f "$BIN" ] || die "binary not found: $BIN (run 'bun run build' first)"
[ -x "$BIN" ] || die "binary not executable: $BIN"
[ -s "$CA_BUNDLE" ] || die "CA bundle not found: $CA_BUNDLE (install ca-certificates or set CA_BUNDLE)"

mkdir -p "$ROOT"
ROOT=$(CDPATH= cd -- "$ROOT" && pwd)
[ "$ROOT" != "/" ] || die "refusing to use / as rootfs"

# Never delete through a live mount (e.g. the test's /proc).
if command -v mountpoint >/dev/null 2>&1 && mountpoint -q "$ROOT/proc" 2>/dev/null; then
  die "$ROOT/proc is mounted; umount it first"
fi

# Start from a clean tree, keeping /data.
for entry in "$ROOT"/* "$ROOT"/.[!.]* "$ROOT"/..?*; do
  [ -e "$entry" ] || [ -L "$entry" ] || continue
  [ "$entry" = "$ROOT/data" ] && continue
  rm -rf --one-file-system -- "$entry"
done

# --- binary ---------------------------------------------------------------
mkdir -p "$ROOT/app"
cp -L -- "$BIN" "$ROOT/app/agentos"   # plain copy: never strip (the app is appended to the ELF)
chmod 0755 "$ROOT/app/agentos"

# --- dynamic loader + shared libraries -------------------------------------
# ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)",
#            "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1 (0x...)".
if ! LIBS=$(ldd "$BIN" 2>&1); then
  case "$LIBS" in
    *"not a dynamic executable"*) LIBS="" ;;   # static binary: nothing to copy
    *) die "ldd failed on $BIN: $LIBS" ;;
  esac
fi
case "$LIBS" in
  *"not found"*) die "missing libraries: $LIBS" ;;
esac
echo "$LIBS" | while read -r first second third _rest; do
  if [ "$second" = "=>" ]; then lib=$third; else lib=$first; fi
  case "$lib" in
    /*) ;;
    *) continue ;;   # linux-vdso.so.1 and friends: provided by the kernel
  esac
  [ -e "$lib" ] || die "library listed by ldd not found: $lib"
  mkdir -p "$ROOT$(dirname -- "$lib")"
  cp -L -- "$lib" "$ROOT$lib"
  chmod 0755 "$ROOT$lib"
done
# The ELF interpreter must be there even if ldd's output format changes.
INTERP=$(LC_ALL=C readelf -l "$BIN" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p' || true)
if [ -n "$INTERP" ] && [ ! -e "$ROOT$INTERP" ]; then
  mkdir -p "$ROOT$(dirname -- "$INTERP")"
  cp -L -- "$INTERP" "$ROOT$INTERP"
  chmod 0755 "$ROOT$INTERP"
fi

# --- /etc -----------------------------------------------------------------
mkdir -p "$ROOT/etc/ssl/certs"
cp -L -- "$CA_BUNDLE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$ROOT/etc/ssl/certs/ca-certificates.crt"

cat >"$ROOT/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
agentos:x:$APP_UID:$APP_GID:agentos:/data:/sbin/nologin
EOF
cat >"$ROOT/etc/group" <<EOF
root:x:0:
agentos:x:$APP_GID:
EOF
cat >"$ROOT/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
# Docker bind-mounts its own /etc/hosts and /etc/resolv.conf over these at run time.
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1 localhost
::1 localhost
EOF
chmod 0644 "$ROOT/etc/passwd" "$ROOT/etc/group" "$ROOT/etc/nsswitch.conf" "$ROOT/etc/hosts"

# --- directories ----------------------------------------------------------
mkdir -p "$ROOT/tmp" "$ROOT/proc" "$ROOT/data"
chmod 1777 "$ROOT/tmp"
chmod 0555 "$ROOT/proc"
chmod 0750 "$ROOT/data"
if [ "$(id -u)" = 0 ]; then
  chown -R "$APP_UID:$APP_GID" "$ROOT/data"
else
  echo "scratch-rootfs: warning: not root, /data is not chowned to $APP_UID:$APP_GID" >&2
fi

echo "scratch-rootfs: $ROOT ready ($(du -sh "$ROOT" | cut -f1))"
