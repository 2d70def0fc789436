# Shell functions for the recipes, sourced before each one runs (harness/layers/build.py). An input of
# every layer's tag: a change here rebuilds every layer.
#
# aecc_pip_install ARGS...  install with `${AECC_PIP:-pip}`, one of two ways:
#   first build:  resolve ARGS under the companion constraints ($AECC_CONSTRAINTS), frozen at
#                 $AECC_RESOLVE_BEFORE when set, and leave pip's report at $AECC_PIP_REPORT, from
#                 which the host makes the layer's lock;
#   with a lock:  install exactly the locked set ($AECC_LOCK), hash-checked, resolving nothing, so a
#                 rebuild on another day or machine installs what the first build did.
# $AECC_PIP_INDEX_ARGS (e.g. the index of `+cpu` torch builds) applies both ways.
aecc_pip_install() {
    pip_cmd=${AECC_PIP:-pip}
    mkdir -p "$(dirname "$AECC_PIP_REPORT")"
    if [ -n "${AECC_LOCK:-}" ]; then
        if ! grep -q '^[^#]' "$AECC_LOCK"; then
            echo '{"version": "1", "install": []}' > "$AECC_PIP_REPORT"  # the first build installed nothing
            return 0
        fi
        $pip_cmd install ${AECC_PIP_INDEX_ARGS:-} --no-deps --require-hashes --report "$AECC_PIP_REPORT" -r "$AECC_LOCK"
    elif [ $# -eq 0 ]; then
        echo '{"version": "1", "install": []}' > "$AECC_PIP_REPORT"  # nothing asked for, nothing installed
    else
        $pip_cmd install ${AECC_PIP_INDEX_ARGS:-} -c "$AECC_CONSTRAINTS" \
            ${AECC_RESOLVE_BEFORE:+--uploaded-prior-to "$AECC_RESOLVE_BEFORE"} \
            --report "$AECC_PIP_REPORT" "$@"
    fi
}
