# Sourced by the scripts of test/container/: debian_mirror SUITE prints the Debian mirror
# that apt on this machine uses for SUITE (one-line .list format or deb822 .sources), or
# nothing. No other address is ever used.
debian_mirror() {
    local suite=$1 files=()
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk -v suite="$suite" '
        function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && uris != "" && !found) {
                split(uris, u, " "); print u[1]; found = 1
            }
            types = ""; uris = ""; suites = ""; enabled = ""
        }
        FNR == 1 { flush() }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^[ \t]*#/) next
            key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
            if (key == "types") types = $0
            else if (key == "uris") uris = $0
            else if (key == "suites") suites = $0
            else if (key == "enabled") enabled = tolower($0)
            next
        }
        /^[ \t]*deb[ \t]/ && !found {
            line = $0; gsub(/\[[^]]*\]/, "", line); n = split(line, f, /[ \t]+/)
            i = (f[1] == "") ? 2 : 1
            if (f[i + 2] == suite) { print f[i + 1]; found = 1 }
        }
        END { flush() }
    ' "${files[@]}"
}
