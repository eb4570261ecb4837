// Collecting header lines from http-parser's callbacks, shared by the request parser
// (handshake.cpp) and the response parser (client_handshake.cpp). http-parser may hand a
// field or a value over in several pieces, across reads. Internal.
#pragma once

#include <cstddef>

#include "websock/http.hpp"

namespace websock::codec::detail {

class HeaderCollector {
public:
    void field(HttpHeaders& headers, const char* at, std::size_t length) {
        if (in_value_ || headers.empty()) {
            headers.emplace_back();
            in_value_ = false;
        }
        headers.back().first.append(at, length);
    }
    void value(HttpHeaders& headers, const char* at, std::size_t length) {
        in_value_ = true;
        headers.back().second.append(at, length);
    }
    /// At the end of the header block: trailing whitespace is not part of a value (RFC 9110
    /// section 5.5).
    static void trim(HttpHeaders& headers) {
        for (auto& header : headers)
            while (!header.second.empty() && (header.second.back() == ' ' || header.second.back() == '\t'))
                header.second.pop_back();
    }

private:
    bool in_value_ = false;  // the last callback was a value: a field starts a new header
};

}  // namespace websock::codec::detail
