#!/bin/sh
# Install or upgrade the agent as a systemd service from this checkout (run as root):
#   sudo systemd/install.sh [--wheelhouse DIR] [--system-site-packages] [--dry-run]
# It makes the virtualenv and installs edge-pdm[agent] into it, then hands over to
# `edge-agent service install` (user, config, models, unit, enable, start). Uninstall with
#   sudo /opt/edge-agent/venv/bin/edge-agent service uninstall [--purge]
set -eu
source_dir=$(cd "$(dirname "$0")/.." && pwd)
venv=/opt/edge-agent/venv
python=${PYTHON:-python3}
installer="-m edge_agent.service.install install --source $source_dir"
case " $* " in
    *" --dry-run "*) cd "$source_dir" && exec "$python" $installer "$@";;
esac
if ! "$python" -c "import ensurepip, venv" 2>/dev/null; then
    echo "install.sh: $python cannot make a virtualenv; first: apt-get install python3-venv" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    case " $* " in
        *" --system-site-packages "*) "$python" -m venv --system-site-packages "$venv";;
        *) "$python" -m venv "$venv";;
    esac
fi
wheelhouse="" previous=""
for arg in "$@"; do
    [ "$previous" = "--wheelhouse" ] && wheelhouse=$arg
    previous=$arg
done
if [ -n "$wheelhouse" ]; then
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheelhouse" "edge-pdm[agent]"
else
    "$venv/bin/python" -m pip install --quiet "$source_dir[agent]"
fi
exec "$venv/bin/python" $installer "$@"
