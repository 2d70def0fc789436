#!/usr/bin/env bash
# The CI gate of a template fork: what the composite action .github/actions/aecc-validate runs, in
# two phases, so that a test can run it exactly as a runner does (tests/ci/test_action.py).
#
#   ci-gate.sh install    install the harness (editable: its image recipes live beside the packages)
#                         and compute the image cache's key
#   ci-gate.sh validate   load the image cache, run `aecc validate` on the checkout with the CPU
#                         torch flavour, write the step summary and outputs, prepare the cache to save;
#                         exits with aecc validate's code (0 no rule or scoring check failed, 1 otherwise, 2 infrastructure)
#
# Inputs come as environment variables (a composite action passes `${{ inputs.x }}` through `env:`,
# never into the script's text): AECC_GATE_PATH, AECC_GATE_ENCODER, AECC_GATE_HARNESS_REF,
# AECC_GATE_HARNESS_REPOSITORY, AECC_GATE_TORCH_INDEX_URL, AECC_GATE_PROFILE, AECC_GATE_MAX_SECONDS,
# AECC_GATE_CACHE, AECC_GATE_CACHE_HIT, AECC_GATE_SAVE_CACHE, AECC_GATE_ARTIFACT, AECC_GATE_INSTALL_SECONDS.
# GitHub's own: GITHUB_WORKSPACE, RUNNER_TEMP, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, GITHUB_EVENT_NAME,
# GITHUB_ACTION_PATH, RUNNER_ARCH.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
harness_tree=$(cd "$here/.." && pwd)  # the repository this script (and the action) came from

: "${RUNNER_TEMP:?RUNNER_TEMP is not set (GitHub sets it; a test must too)}"
: "${GITHUB_WORKSPACE:?GITHUB_WORKSPACE is not set}"
fork_dir="$GITHUB_WORKSPACE/${AECC_GATE_PATH:-.}"
index_url=${AECC_GATE_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
cache_dir="$RUNNER_TEMP/aecc-image-cache"
out="$RUNNER_TEMP/aecc-gate"             # the artifact: report, JUnit, image list, stage logs
staged="$RUNNER_TEMP/aecc-submission"    # the checkout without .git: what is validated
export AECC_HOME=${AECC_HOME:-$RUNNER_TEMP/aecc-home}

output() { [ -n "${GITHUB_OUTPUT:-}" ] && printf '%s=%s\n' "$1" "$2" >> "$GITHUB_OUTPUT"; return 0; }
now() { date +%s.%N; }
since() { python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

phase_install() {
    local t0 spec repo
    t0=$(now)
    if [ -n "${AECC_GATE_HARNESS_REF:-}" ]; then
        repo=${AECC_GATE_HARNESS_REPOSITORY:-${GITHUB_ACTION_REPOSITORY:-}}
        if [ -z "$repo" ]; then
            echo "::error title=aecc-validate::harness-ref is set but the harness repository is unknown: set harness-repository (owner/name)"
            return 2
        fi
        case "$repo" in *://*) ;; *) repo="https://github.com/$repo" ;; esac
        spec="git+$repo@$AECC_GATE_HARNESS_REF#egg=aecc-harness"
        echo "aecc-gate: installing the harness from $spec"
        python -m pip install --disable-pip-version-check -q --src "$RUNNER_TEMP/aecc-src" -e "$spec" || return 2
    else
        echo "aecc-gate: installing the harness from the action's own tree ($harness_tree)"
        python -m pip install --disable-pip-version-check -q -e "$harness_tree" || return 2
    fi
    aecc --help >/dev/null || { echo "::error title=aecc-validate::the aecc command is not on PATH after the install"; return 2; }
    python -m harness.report.github cache-key --requirements "$fork_dir/requirements.txt" --flavour cpu \
        --index-url "$index_url" >/dev/null || return 2
    output cache-path "$cache_dir"
    output install-seconds "$(since "$t0")"
}

summary() {  # summary EXIT_CODE [--timing ...]: the step summary and outputs, whatever happened before
    local code=$1
    shift
    python -m harness.report.github summary --report "$out/report.json" --junit "$out/junit.xml" \
        --exit-code "$code" --images "$out/images.json" --chain "$out/chain.json" \
        --cache "$cache_state" --artifact "${AECC_GATE_ARTIFACT:-aecc-validate-report}" "$@" \
        || echo "::warning title=aecc-validate::the step summary could not be written"
}

phase_validate() {
    local t0 code token timings=() refs=() save
    cache_state="off"
    rm -rf "$out" "$staged"
    mkdir -p "$out" "$AECC_HOME"
    output artifact-dir "$out"
    [ -n "${AECC_GATE_INSTALL_SECONDS:-}" ] && timings+=(--timing "gate: install the harness=$AECC_GATE_INSTALL_SECONDS")

    t0=$(now)
    if ! python -m harness.report.github stage "$fork_dir" "$staged"; then
        echo "::error title=aecc-validate::could not copy the checkout at ${AECC_GATE_PATH:-.}"
        summary 2 "${timings[@]}"
        return 2
    fi
    timings+=(--timing "gate: copy the checkout=$(since "$t0")")

    if [ "${AECC_GATE_CACHE:-true}" = true ]; then
        cache_state="miss: images built here"
        if [ -f "$cache_dir/images.tar" ]; then
            t0=$(now)
            if docker load -q -i "$cache_dir/images.tar"; then
                [ -d "$cache_dir/pip-locks" ] && mkdir -p "$AECC_HOME/pip-locks" \
                    && cp -n "$cache_dir"/pip-locks/* "$AECC_HOME/pip-locks/" 2>/dev/null
                cache_state=$([ "${AECC_GATE_CACHE_HIT:-}" = true ] && echo "hit" || echo "partial hit (an older key)")
                cache_state="$cache_state: $(du -h "$cache_dir/images.tar" | cut -f1) of images loaded"
                timings+=(--timing "gate: load the image cache=$(since "$t0")")
            else
                cache_state="restored but not loadable: images built here"
            fi
        fi
    fi

    # Nothing the encoder prints may act as a workflow command (`::set-output`, `::add-mask` ...):
    # commands stay off until the token that only this script knows.
    token=$(python -c "import secrets; print(secrets.token_hex(16))")
    echo "::stop-commands::$token"
    t0=$(now)
    local encoder_args=()
    [ -n "${AECC_GATE_ENCODER:-}" ] && encoder_args=(--encoder "$AECC_GATE_ENCODER")
    [ "${AECC_GATE_STRICT:-false}" = true ] && encoder_args+=(--strict)
    aecc validate "$staged" "${encoder_args[@]}" --profile "${AECC_GATE_PROFILE:-cpu}" --torch-flavour cpu \
        --torch-index-url "$index_url" --max-seconds "${AECC_GATE_MAX_SECONDS:-600}" \
        --json-out "$out/report.json" --junit-out "$out/junit.xml"
    code=$?
    echo "::$token::"
    timings+=(--timing "gate: aecc validate=$(since "$t0")")
    case "$code" in 0|1|2) ;; *) echo "aecc-gate: aecc validate ended with $code"; code=2 ;; esac

    aecc images list --json > "$out/images.json" 2>/dev/null || echo "[]" > "$out/images.json"
    python -m harness.report.github chain --report "$out/report.json" > "$out/chain.json" 2>/dev/null \
        || echo "[]" > "$out/chain.json"
    python -m harness.report.github logs --report "$out/report.json" --dest "$out/logs" || true

    save=${AECC_GATE_SAVE_CACHE:-auto}
    if [ "$save" = auto ]; then
        # A pull request's cache is visible to that pull request only and would push the branch's
        # cache out of the repository's quota: pull requests restore, pushes save.
        case "${GITHUB_EVENT_NAME:-}" in pull_request|pull_request_target) save=false ;; *) save=true ;; esac
    fi
    if [ "${AECC_GATE_CACHE:-true}" = true ] && [ "$save" = true ] && [ "${AECC_GATE_CACHE_HIT:-}" != true ]; then
        # The layers under the submission's own (root, base, torch): the submission layer's tag
        # includes every file of the fork, so it is never reused by the next commit.
        mapfile -t refs < <(python -c "
import json, sys
chain = json.load(open(sys.argv[1]))
print('\n'.join(e['reference'] for e in chain if not str(e.get('layer', '')).startswith('submission-')))
" "$out/chain.json")
        if [ "${#refs[@]}" -gt 0 ] && [ -n "${refs[0]}" ]; then
            t0=$(now)
            rm -rf "$cache_dir" && mkdir -p "$cache_dir"
            if docker save -o "$cache_dir/images.tar" "${refs[@]}"; then
                [ -d "$AECC_HOME/pip-locks" ] && cp -r "$AECC_HOME/pip-locks" "$cache_dir/"
                output cache-save true
                cache_state="$cache_state; saved ${#refs[@]} images ($(du -h "$cache_dir/images.tar" | cut -f1))"
                timings+=(--timing "gate: save the image cache=$(since "$t0")")
            else
                rm -rf "$cache_dir"
                cache_state="$cache_state; could not be saved"
            fi
        fi
    fi

    summary "$code" "${timings[@]}"
    # The verdict's own first line (checker/verdict.py), as aecc validate printed it.
    headline=$(python -c "
import json, sys
try:
    print(json.load(open(sys.argv[1]))['verdict']['headline'].splitlines()[0][:500])
except Exception:
    print('')
" "$out/report.json")
    case "$code" in
        0) echo "aecc-gate: ${headline:-passed}" ;;
        1) echo "::error title=AECC contract::${headline:-the encoder must be fixed}: see the job summary" ;;
        *) echo "::error title=AECC gate::infrastructure error (not the encoder's fault): see the job summary" ;;
    esac
    return "$code"
}

case "${1:-}" in
    install) phase_install ;;
    validate) phase_validate ;;
    *) echo "usage: $0 install|validate" >&2; exit 2 ;;
esac
