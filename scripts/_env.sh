# Shared by serve.sh and test.sh: a project virtualenv with PeerLearn installed (editable).
# Works on a fresh Debian/Ubuntu machine with Python 3.11+; uses sudo when not root.

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
APT_UPDATED=""

apt_install() {
  # apt_install PKG...: install Debian packages that are not installed yet.
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing system packages: ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "PeerLearn needs Python 3.11 or newer" >&2
  return 1
}

ensure_venv() {
  # ensure_venv EXTRAS: create .venv (again, if a previous attempt left it without pip) and
  # install the project with the given extras.
  local extras="$1" python
  python=$(pick_python)
  if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    # Debian/Ubuntu ship ensurepip separately, per Python version (python3.11-venv, ...).
    apt_install "$(basename "$(readlink -f "$(command -v "$python")")")-venv"
  fi
  if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    echo "==> .venv has no working pip; recreating it"
    rm -rf .venv
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $python"
    "$python" -m venv .venv
  fi
  echo "==> installing PeerLearn${extras:+ [$extras]} into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # constraints.txt: the exact versions the suite passed with (see its header).
  .venv/bin/python -m pip install -q -c constraints.txt -e ".${extras:+[$extras]}"
}
