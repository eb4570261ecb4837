// The Sec-WebSocket-Extensions header (RFC 6455 section 9.1): parse an offer list into
// extension names with parameters, and serialize a list back. Sans-I/O and independent of
// any one extension; permessage-deflate (codec/deflate.hpp) negotiates on top of it.
//
// The grammar (RFC 6455 section 9.1, with the list and whitespace rules of RFC 7230
// section 7, which RFC 6455 takes from RFC 2616):
//
//   Sec-WebSocket-Extensions = extension-list
//   extension-list = 1#extension
//   extension      = extension-token *( ";" extension-param )
//   extension-token = registered-token
//   registered-token = token
//   extension-param = token [ "=" (token | quoted-string) ]
//       ; When using the quoted-string syntax variant, the value after quoted-string
//       ; unescaping MUST conform to the 'token' ABNF.
//
// Optional whitespace (spaces, tabs) is allowed around ",", ";" and "=". Empty list
// elements ("a, , b", a leading or trailing comma) are skipped as RFC 7230 section 7 asks;
// an empty or blank value is an empty list (a request may carry the header with nothing in
// it; the caller treats that like no header). The same extension may appear several times:
// in a request those are alternative offers, in order of preference (RFC 6455 section 9.1).
//
// How the wiring uses it:
//   server: parse_extensions(request.header_joined("Sec-WebSocket-Extensions")); on a parse
//           error, ignore the header (answer without extensions) — RFC 6455 does not ask for
//           a refusal, and a broken header must never produce a broken response. Each
//           extension negotiates on the parsed offers (deflate: negotiate_server), and the
//           accepted elements go back, in order, through serialize_extensions.
//   client: sends its offers through serialize_extensions; a response that does not parse
//           fails the connection (section 4.1: it cannot be an extension we offered).
//
// Header-only: the parser is small and has no state.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace websock::codec {

/// One parameter of an extension: `name` or `name=value`. A quoted value is stored unquoted
/// (and unescaped); `value` is empty (nullopt) when the parameter had no "=".
struct ExtensionParam {
    std::string name;                  ///< the parameter's token
    std::optional<std::string> value;  ///< after "=", unquoted; nullopt without "="

    /// Same name and value (names compared exactly).
    friend bool operator==(const ExtensionParam&, const ExtensionParam&) = default;
};

/// One element of an extension list: an offer in a request, an accepted extension in a
/// response. Parameters keep their order; duplicates are kept (each extension decides what
/// a duplicate means: permessage-deflate declines the offer).
struct ExtensionOffer {
    std::string name;                    ///< the extension's token, e.g. permessage-deflate
    std::vector<ExtensionParam> params;  ///< in header order

    /// The first parameter with this name (ASCII case-insensitive), or nullptr.
    const ExtensionParam* find(std::string_view param_name) const noexcept;

    /// Same name and the same parameters in the same order.
    friend bool operator==(const ExtensionOffer&, const ExtensionOffer&) = default;
};

/// The outcome of parse_extensions.
struct ExtensionParseResult {
    std::vector<ExtensionOffer> offers;  ///< in header order; empty on error
    std::string_view error;              ///< static text; empty on success
    std::size_t error_offset = 0;        ///< where in the value the error was found

    /// The value parsed.
    bool ok() const noexcept { return error.empty(); }
};

/// RFC 7230 tchar: "!#$%&'*+-.^_`|~", digits and letters.
constexpr bool is_token_char(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
        case '-': case '.': case '^': case '_': case '`': case '|': case '~':
            return true;
        default:
            return false;
    }
}

/// A non-empty run of token characters.
constexpr bool is_token(std::string_view text) noexcept {
    if (text.empty()) return false;
    for (char c : text)
        if (!is_token_char(c)) return false;
    return true;
}

/// ASCII case-insensitive equality (extension and parameter names are tokens, matched
/// without regard to case as HTTP tokens usually are).
constexpr bool token_iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

/// Parse a Sec-WebSocket-Extensions value (several header lines joined with ", " are one
/// value). Never throws on bad input: a syntax error comes back in `error` with its offset.
ExtensionParseResult parse_extensions(std::string_view value);

/// Serialize one element: `name; param; param=value`. Names and values must be tokens (every
/// element this library builds is); anything else throws std::invalid_argument, so a broken
/// or injected header (CR, LF) can never be produced.
std::string serialize_extension(const ExtensionOffer& extension);

/// Serialize a list, elements joined with ", ". Empty list: empty string (send no header).
std::string serialize_extensions(const std::vector<ExtensionOffer>& extensions);

// ---- implementation ---------------------------------------------------------------------

inline const ExtensionParam* ExtensionOffer::find(std::string_view param_name) const noexcept {
    for (const auto& p : params)
        if (token_iequals(p.name, param_name)) return &p;
    return nullptr;
}

namespace detail {

class ExtensionParser {
public:
    explicit ExtensionParser(std::string_view text) noexcept : s_(text) {}

    ExtensionParseResult run() {
        ExtensionParseResult result;
        for (;;) {
            skip_ows();
            if (at_end()) break;
            if (peek() == ',') {  // an empty list element
                ++pos_;
                continue;
            }
            ExtensionOffer offer;
            if (!token(offer.name)) return fail(result, "expected an extension name");
            for (;;) {
                skip_ows();
                if (at_end() || peek() == ',') break;
                if (peek() != ';') return fail(result, "expected ';' or ',' after an extension element");
                ++pos_;
                skip_ows();
                ExtensionParam param;
                if (!token(param.name)) return fail(result, "expected a parameter name");
                skip_ows();
                if (!at_end() && peek() == '=') {
                    ++pos_;
                    skip_ows();
                    std::string value;
                    if (!at_end() && peek() == '"') {
                        const std::size_t quote_at = pos_;
                        if (!quoted_string(value)) {
                            pos_ = quote_at;
                            return fail(result, "unterminated or invalid quoted-string");
                        }
                        // RFC 6455 section 9.1: the unescaped value must be a token.
                        if (!is_token(value)) {
                            pos_ = quote_at;
                            return fail(result, "quoted parameter value is not a token");
                        }
                    } else if (!token(value)) {
                        return fail(result, "expected a parameter value");
                    }
                    param.value = std::move(value);
                }
                offer.params.push_back(std::move(param));
            }
            result.offers.push_back(std::move(offer));
            if (!at_end()) ++pos_;  // the ','
        }
        return result;
    }

private:
    bool at_end() const noexcept { return pos_ >= s_.size(); }
    char peek() const noexcept { return s_[pos_]; }
    void skip_ows() noexcept {
        while (!at_end() && (peek() == ' ' || peek() == '\t')) ++pos_;
    }
    bool token(std::string& out) {
        const std::size_t start = pos_;
        while (!at_end() && is_token_char(peek())) ++pos_;
        if (pos_ == start) return false;
        out.assign(s_.substr(start, pos_ - start));
        return true;
    }
    // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE   (RFC 7230 section 3.2.6)
    // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
    bool quoted_string(std::string& out) {
        ++pos_;  // the opening quote
        while (!at_end()) {
            const auto c = static_cast<unsigned char>(peek());
            if (c == '"') {
                ++pos_;
                return true;
            }
            if (c == '\\') {
                ++pos_;
                if (at_end()) return false;
                const auto e = static_cast<unsigned char>(peek());
                if (!(e == '\t' || e >= 0x20) || e == 0x7F) return false;
                out.push_back(static_cast<char>(e));
                ++pos_;
                continue;
            }
            if (!(c == '\t' || c >= 0x20) || c == 0x7F) return false;
            out.push_back(static_cast<char>(c));
            ++pos_;
        }
        return false;
    }
    ExtensionParseResult& fail(ExtensionParseResult& result, std::string_view why) {
        result.offers.clear();
        result.error = why;
        result.error_offset = pos_;
        return result;
    }

    std::string_view s_;
    std::size_t pos_ = 0;
};

}  // namespace detail

inline ExtensionParseResult parse_extensions(std::string_view value) {
    return detail::ExtensionParser(value).run();
}

inline std::string serialize_extension(const ExtensionOffer& extension) {
    if (!is_token(extension.name)) throw std::invalid_argument("extension name is not a token");
    std::string out = extension.name;
    for (const auto& p : extension.params) {
        if (!is_token(p.name)) throw std::invalid_argument("extension parameter name is not a token");
        out += "; ";
        out += p.name;
        if (p.value) {
            if (!is_token(*p.value)) throw std::invalid_argument("extension parameter value is not a token");
            out += '=';
            out += *p.value;
        }
    }
    return out;
}

inline std::string serialize_extensions(const std::vector<ExtensionOffer>& extensions) {
    std::string out;
    for (const auto& e : extensions) {
        if (!out.empty()) out += ", ";
        out += serialize_extension(e);
    }
    return out;
}

}  // namespace websock::codec
