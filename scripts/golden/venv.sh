# Sourced by the golden generators. `ensure_venv VENV REQUIREMENTS STAMP_NAME` makes VENV a venv
# holding exactly the pins of the file REQUIREMENTS, reinstalled only when the pins change (their
# sha256 is kept in VENV/STAMP_NAME), and sets `py` to its interpreter. PYTHON names the
# interpreter that creates the venv (default python3).
ensure_venv() {
  local venv="$1" req="$2" stamp="$1/$3" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "venv    creating $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  py="$venv/bin/python"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "venv    installing the pins of $(basename "$req") into $venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$py" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
  else
    echo "venv    ok ($venv)" >&2
  fi
}
