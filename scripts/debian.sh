# Sourced by the scripts: `need_commands CMD=PACKAGE ...` installs the Debian packages of the missing
# commands (apt-get, as root), or stops with the one command that installs them.
need_commands() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "error: missing ${missing[*]}: sudo apt-get install ${missing[*]}" \
      "(Debian/Ubuntu; elsewhere install the same programs), then run this again" >&2
    exit 1
  fi
}
