// The admin side's sign-in, as channelstream 0.7.1 has it: POST /admin/sign_in with the form
// fields `username` and `password` sets a cookie that lets /admin and /admin/admin.json in.
//
// channelstream's cookie is pyramid's AuthTkt; ours is our own, and unforgeable without the
// server's secret:
//
//   auth_tkt=<expiry, Unix seconds>.<hex HMAC-SHA256(key, "admin-session\n" expiry)>
//   key = HMAC-SHA256(cookie_secret, or secret when that is empty,
//                     "websock-hub admin cookie v1\n" len(admin_user) ":" admin_user admin_secret)
//
// The key covers the admin user and password, so changing either (or the secret) ends every
// session; the expiry is inside the MAC, so it cannot be stretched. MACs are compared in
// constant time. Also here: the form body parser, the Cookie header reader, and the queue
// that holds a failed sign-in's answer back (channelstream sleeps 0.5 s; we must not block a
// server thread). Pure functions, except DelayedAnswers (thread-safe).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hub::channelstream {

// ---- forms -------------------------------------------------------------------------------

using FormFields = std::vector<std::pair<std::string, std::string>>;

/// An application/x-www-form-urlencoded body: `a=1&b=x+y%21` -> {a: "1", b: "x y!"}, in order.
/// As Python's parse_qsl(keep_blank_values=True): '+' is a space, a bad %-escape stays as it
/// is, a pair without '=' has an empty value, empty pairs are skipped.
FormFields parse_form(std::string_view body);
/// The field's value; the last one when it is repeated (webob's MultiDict.get).
std::optional<std::string> form_value(const FormFields& fields, std::string_view name);
/// Whether a request with this Content-Type has form fields for webob's request.POST: absent,
/// empty or application/x-www-form-urlencoded (any parameters). multipart/form-data is not
/// read here (browsers send a plain form urlencoded).
bool is_urlencoded_form(std::optional<std::string_view> content_type);

// ---- cookies -----------------------------------------------------------------------------

inline constexpr std::string_view kAdminCookieName = "auth_tkt";  ///< channelstream's (pyramid's) name
inline constexpr std::chrono::seconds kAdminSessionLifetime{12 * 3600};

/// Every value of cookie `name` in Cookie header values (a browser may send the same name
/// twice, for two paths).
std::vector<std::string> cookie_values(const std::vector<std::string_view>& cookie_headers, std::string_view name);

struct CookieAttributes {
    std::string path = "/";
    std::chrono::seconds max_age{0};
    bool secure = false;
};
/// `name=value; Path=...; Max-Age=...; HttpOnly; SameSite=Lax[; Secure]`.
std::string set_cookie_header(std::string_view name, std::string_view value, const CookieAttributes& attributes);

/// Issues and checks the admin session cookie (above).
class AdminSessionSigner {
public:
    /// `signing_secret` is cookie_secret, or secret when that is empty.
    AdminSessionSigner(std::string_view signing_secret, std::string_view admin_user, std::string_view admin_secret);

    /// A cookie value valid until now + lifetime.
    std::string issue(std::int64_t now, std::chrono::seconds lifetime = kAdminSessionLifetime) const;
    /// Whether `value` was issued by a signer with the same secrets and has not expired.
    bool verify(std::string_view value, std::int64_t now) const;

private:
    std::string mac_hex(std::string_view expiry) const;
    std::string key_;
};

// ---- held-back answers -------------------------------------------------------------------

/// Answers to send later (a failed sign-in's, after channelstream's 0.5 s). Bounded: add()
/// refuses past `max_pending`, so many wrong guesses at once cannot pile up memory (nor be
/// answered early). Thread-safe.
class DelayedAnswers {
public:
    using Answer = std::function<void()>;
    static constexpr std::size_t kDefaultMaxPending = 64;
    enum class Added { Held, Full, Closed };

    explicit DelayedAnswers(std::size_t max_pending = kDefaultMaxPending) : max_pending_(max_pending) {}
    /// Keep `answer` until `due` (any clock, the caller's). Full: `max_pending` are held;
    /// Closed: after close(). Either way the caller answers.
    Added add(std::int64_t due, Answer answer);
    /// Those due at `now`, in the order added, removed from the queue.
    std::vector<Answer> take_due(std::int64_t now);
    /// Refuse from now on, and give back everything held, due or not (shutting down).
    std::vector<Answer> close();
    std::size_t size() const;

private:
    std::size_t max_pending_;
    mutable std::mutex mutex_;
    bool closed_ = false;
    std::vector<std::pair<std::int64_t, Answer>> pending_;
};

}  // namespace hub::channelstream
