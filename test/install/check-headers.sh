#!/bin/sh
# Checks an installed include directory (test/install/run.sh passes <prefix>/include):
#  1. the set is closed: every websock header that an installed header includes is installed;
#  2. no internal header (websock/detail/) was installed;
#  3. every installed header compiles on its own, with only this directory on the include
#     path and our warnings as errors (a user's -Werror must not trip on our headers).
set -eu
include_dir=$1
CXX=${CXX:-g++}
cd "$include_dir"
headers=$(find websock -name '*.hpp' | sort)
[ -n "$headers" ] || { echo "check-headers: no headers under $include_dir"; exit 1; }

status=0
for header in $headers; do
    for included in $(sed -n -e 's|^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\(websock/[^>"]*\)[>"].*|\1|p' "$header"); do
        if [ ! -f "$included" ]; then
            echo "check-headers: $header includes $included, which is not installed"
            status=1
        fi
    done
done
if [ -d websock/detail ]; then
    echo "check-headers: internal headers were installed: $(find websock/detail -type f | tr '\n' ' ')"
    status=1
fi

# Two at a time (the machine's cores); each prints its own failure.
if ! printf '%s\n' $headers | xargs -P2 -I{} sh -c \
    'printf "#include <%s>\n" "$1" | '"$CXX"' -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Wshadow -Werror \
        -I"$2" -x c++ - -o /dev/null || { echo "check-headers: $1 does not compile on its own"; exit 1; }' \
    sh {} "$include_dir"; then
    status=1
fi
[ $status -eq 0 ] && echo "check-headers: $(echo "$headers" | wc -l) headers, closed and each compiling alone"
exit $status
