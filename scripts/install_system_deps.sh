#!/usr/bin/env bash
# System packages the test suite uses as references or services. Installs them with apt when run as
# root on Debian and they are missing; otherwise says what is missing (those tests then skip, saying why).
set -u
need=()
command -v Rscript >/dev/null 2>&1 && Rscript -e 'quit(status = !requireNamespace("lme4", quietly = TRUE))' >/dev/null 2>&1 \
    || need+=(r-base-core r-cran-lme4)
# blme's bglmer: the reference for the GLMM's fit with fixed-effect priors under separation (tests/test_glmm.py)
command -v Rscript >/dev/null 2>&1 && Rscript -e 'quit(status = !requireNamespace("blme", quietly = TRUE))' >/dev/null 2>&1 \
    || need+=(r-cran-blme)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)   # end-to-end browser tests (tests/test_e2e_browser.py)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)   # two servers behind a proxy (tests/study/test_two_servers_browser.py)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages for the tests: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || echo "warning: could not install ${need[*]}; the tests that need them will skip and say so"
else
    echo "note: missing system packages (${need[*]}); install them with apt-get as root, or the tests that need them skip"
fi
exit 0
