#!/bin/sh
# Install or upgrade the agent as a systemd service from this checkout (run as root):
#   sudo systemd/install.sh [--wheelhouse DIR] [--system-site-packages] [--dry-run]
# It hands over to `edge-agent service install` (user, virtualenv with edge-pdm[agent], config,
# models, unit, enable, start). Uninstall with
#   sudo /opt/edge-agent/venv/bin/edge-agent service uninstall [--purge]
set -eu
source_dir=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
if ! "$python" -c "import ensurepip, venv" 2>/dev/null; then
    echo "install.sh: $python cannot make a virtualenv; first: apt-get install python3-venv" >&2
    exit 1
fi
# The installer needs only the standard library: run it from the checkout with the system's
# Python. It makes /opt/edge-agent/venv and installs edge-pdm[agent] there (from a copy of the
# checkout, which stays free of root-owned build files, or from --wheelhouse).
# Folders given relative to where this was started stay that way after the cd below.
previous=""
for arg in "$@"; do
    shift
    case "$previous|$arg" in
        --wheelhouse\|/* | --root\|/*) ;;
        --wheelhouse\|* | --root\|*) arg="$PWD/$arg" ;;
        *\|--wheelhouse=/* | *\|--root=/*) ;;
        *\|--wheelhouse=* | *\|--root=*) arg="${arg%%=*}=$PWD/${arg#*=}" ;;
    esac
    set -- "$@" "$arg"
    previous=$arg
done
cd "$source_dir"
exec "$python" -m edge_agent.service.install install --source "$source_dir" "$@"
