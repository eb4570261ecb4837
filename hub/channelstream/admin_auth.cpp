#include "hub/channelstream/admin_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>

#include <websock/websock.hpp>

#include "hub/channelstream/signer.hpp"

namespace hub::channelstream {

namespace {

constexpr std::string_view kSpaces = " \t";

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(kSpaces);
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(kSpaces) - first + 1);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         mac.data(), &length);
    return std::string(reinterpret_cast<const char*>(mac.data()), length);
}

}  // namespace

// ---- forms -------------------------------------------------------------------------------

FormFields parse_form(std::string_view body) {
    FormFields fields;
    while (!body.empty()) {
        const auto amp = body.find('&');
        const std::string_view pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        fields.emplace_back(websock::percent_decode(pair.substr(0, eq), true),
                            eq == std::string_view::npos ? std::string{} : websock::percent_decode(pair.substr(eq + 1), true));
    }
    return fields;
}

std::optional<std::string> form_value(const FormFields& fields, std::string_view name) {
    for (auto it = fields.rbegin(); it != fields.rend(); ++it)
        if (it->first == name) return it->second;
    return std::nullopt;
}

bool is_urlencoded_form(std::optional<std::string_view> content_type) {
    if (!content_type) return true;
    const std::string_view type = trim(content_type->substr(0, content_type->find(';')));
    return type.empty() || websock::iequals(type, "application/x-www-form-urlencoded");
}

// ---- cookies -----------------------------------------------------------------------------

std::vector<std::string> cookie_values(const std::vector<std::string_view>& cookie_headers, std::string_view name) {
    std::vector<std::string> values;
    for (std::string_view header : cookie_headers) {
        while (!header.empty()) {
            const auto semicolon = header.find(';');
            const std::string_view pair = trim(header.substr(0, semicolon));
            header = semicolon == std::string_view::npos ? std::string_view{} : header.substr(semicolon + 1);
            const auto eq = pair.find('=');
            if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) continue;
            std::string_view value = trim(pair.substr(eq + 1));
            if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
            values.emplace_back(value);
        }
    }
    return values;
}

std::string set_cookie_header(std::string_view name, std::string_view value, const CookieAttributes& attributes) {
    std::string header;
    header.append(name).append("=").append(value);
    header.append("; Path=").append(attributes.path);
    header.append("; Max-Age=").append(std::to_string(attributes.max_age.count()));
    header.append("; HttpOnly; SameSite=Lax");
    if (attributes.secure) header.append("; Secure");
    return header;
}

AdminSessionSigner::AdminSessionSigner(std::string_view signing_secret, std::string_view admin_user, std::string_view admin_secret) {
    std::string material = "websock-hub admin cookie v1\n";
    material.append(std::to_string(admin_user.size())).append(":").append(admin_user).append(admin_secret);
    key_ = hmac_sha256(signing_secret, material);
}

std::string AdminSessionSigner::mac_hex(std::string_view expiry) const {
    return to_hex(hmac_sha256(key_, "admin-session\n" + std::string(expiry)));
}

std::string AdminSessionSigner::issue(std::int64_t now, std::chrono::seconds lifetime) const {
    const std::string expiry = std::to_string(now + lifetime.count());
    return expiry + "." + mac_hex(expiry);
}

bool AdminSessionSigner::verify(std::string_view value, std::int64_t now) const {
    const auto dot = value.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 15) return false;
    const std::string_view expiry = value.substr(0, dot);
    if (!std::all_of(expiry.begin(), expiry.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
    const std::string_view mac = value.substr(dot + 1);
    const std::string expected = mac_hex(expiry);
    // The length is public (always 64); the bytes are compared in constant time.
    if (mac.size() != expected.size() || CRYPTO_memcmp(mac.data(), expected.data(), expected.size()) != 0) return false;
    return std::stoll(std::string(expiry)) > now;
}

// ---- held-back answers -------------------------------------------------------------------

DelayedAnswers::Added DelayedAnswers::add(std::int64_t due, Answer answer) {
    std::lock_guard lock(mutex_);
    if (closed_) return Added::Closed;
    if (pending_.size() >= max_pending_) return Added::Full;
    pending_.emplace_back(due, std::move(answer));
    return Added::Held;
}

std::vector<DelayedAnswers::Answer> DelayedAnswers::take_due(std::int64_t now) {
    std::vector<Answer> due;
    std::vector<std::pair<std::int64_t, Answer>> later;
    std::lock_guard lock(mutex_);
    for (auto& entry : pending_) {
        if (entry.first <= now) due.push_back(std::move(entry.second));
        else later.push_back(std::move(entry));
    }
    pending_ = std::move(later);
    return due;
}

std::vector<DelayedAnswers::Answer> DelayedAnswers::close() {
    std::vector<Answer> all;
    std::lock_guard lock(mutex_);
    closed_ = true;
    for (auto& entry : pending_) all.push_back(std::move(entry.second));
    pending_.clear();
    return all;
}

std::size_t DelayedAnswers::size() const {
    std::lock_guard lock(mutex_);
    return pending_.size();
}

}  // namespace hub::channelstream
