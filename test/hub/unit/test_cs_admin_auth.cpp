// The admin sign-in's pieces: the form body parser, the Cookie header reader, the session
// cookie's signing and checking, and the queue that holds failed sign-ins' answers back.
#include <doctest/doctest.h>

#include <cctype>
#include <string>
#include <vector>

#include "hub/channelstream/admin_auth.hpp"

using namespace hub::channelstream;

namespace {
constexpr std::int64_t kNow = 1'600'000'000;
}

TEST_CASE("cs admin: form bodies") {
    SUBCASE("fields in order, '+' and %-escapes decoded") {
        const FormFields fields = parse_form("username=ad+min&password=p%40ss%2Bw%C3%B6rd&empty=&bare");
        REQUIRE(fields.size() == 4);
        CHECK(fields[0] == std::pair<std::string, std::string>{"username", "ad min"});
        CHECK(fields[1].second == "p@ss+w\xC3\xB6rd");
        CHECK(fields[2] == std::pair<std::string, std::string>{"empty", ""});
        CHECK(fields[3] == std::pair<std::string, std::string>{"bare", ""});
    }
    SUBCASE("empty pairs are skipped; a bad escape stays as written (Python's unquote)") {
        const FormFields fields = parse_form("&&a=%zz%4&&b=%");
        REQUIRE(fields.size() == 2);
        CHECK(fields[0].second == "%zz%4");
        CHECK(fields[1].second == "%");
        CHECK(parse_form("").empty());
    }
    SUBCASE("an '=' in a value is kept; names are decoded too") {
        const FormFields fields = parse_form("pass%77ord=a=b");
        REQUIRE(fields.size() == 1);
        CHECK(fields[0].first == "password");
        CHECK(fields[0].second == "a=b");
    }
    SUBCASE("form_value: the last of repeated fields, nullopt when absent") {
        const FormFields fields = parse_form("u=1&p=x&u=2");
        CHECK(form_value(fields, "u") == "2");
        CHECK(form_value(fields, "p") == "x");
        CHECK_FALSE(form_value(fields, "q").has_value());
    }
    SUBCASE("which Content-Types carry form fields") {
        CHECK(is_urlencoded_form(std::nullopt));
        CHECK(is_urlencoded_form(""));
        CHECK(is_urlencoded_form("application/x-www-form-urlencoded"));
        CHECK(is_urlencoded_form("Application/X-WWW-Form-Urlencoded ; charset=UTF-8"));
        CHECK_FALSE(is_urlencoded_form("application/json"));
        CHECK_FALSE(is_urlencoded_form("multipart/form-data; boundary=x"));
        CHECK_FALSE(is_urlencoded_form("text/plain"));
    }
}

TEST_CASE("cs admin: cookies") {
    SUBCASE("every value of a name, over several headers, quotes removed") {
        const std::vector<std::string_view> headers{"a=1; auth_tkt=one;  other=x", "auth_tkt=\"two\";auth_tktx=no; =bad; noeq"};
        CHECK(cookie_values(headers, "auth_tkt") == std::vector<std::string>{"one", "two"});
        CHECK(cookie_values(headers, "other") == std::vector<std::string>{"x"});
        CHECK(cookie_values(headers, "missing").empty());
        CHECK(cookie_values({}, "auth_tkt").empty());
    }
    SUBCASE("Set-Cookie carries HttpOnly, SameSite=Lax, the path and the lifetime") {
        CookieAttributes attributes;
        attributes.path = "/cs/admin";
        attributes.max_age = std::chrono::seconds{60};
        CHECK(set_cookie_header("auth_tkt", "v", attributes) == "auth_tkt=v; Path=/cs/admin; Max-Age=60; HttpOnly; SameSite=Lax");
        attributes.secure = true;
        attributes.max_age = std::chrono::seconds{0};
        CHECK(set_cookie_header("auth_tkt", "", attributes) == "auth_tkt=; Path=/cs/admin; Max-Age=0; HttpOnly; SameSite=Lax; Secure");
    }
}

TEST_CASE("cs admin: the session cookie") {
    const AdminSessionSigner signer("server-secret", "admin", "pw");
    const std::string value = signer.issue(kNow, std::chrono::seconds{100});

    SUBCASE("its form: expiry and a 64-digit hex MAC, cookie-safe") {
        const auto dot = value.find('.');
        REQUIRE(dot != std::string::npos);
        CHECK(value.substr(0, dot) == std::to_string(kNow + 100));
        CHECK(value.size() - dot - 1 == 64);
        CHECK(value.find_first_not_of("0123456789abcdef.") == std::string::npos);
        CHECK(signer.issue(kNow, std::chrono::seconds{100}) == value);  // deterministic
    }
    SUBCASE("valid until its expiry, not at or after it") {
        CHECK(signer.verify(value, kNow));
        CHECK(signer.verify(value, kNow + 99));
        CHECK_FALSE(signer.verify(value, kNow + 100));
        CHECK_FALSE(signer.verify(value, kNow + 100000));
    }
    SUBCASE("the default lifetime is twelve hours") {
        const std::string day = signer.issue(kNow);
        CHECK(signer.verify(day, kNow + 12 * 3600 - 1));
        CHECK_FALSE(signer.verify(day, kNow + 12 * 3600));
    }
    SUBCASE("a stretched expiry or a changed MAC is refused") {
        std::string later = value;
        later.replace(0, later.find('.'), std::to_string(kNow + 1'000'000));
        CHECK_FALSE(signer.verify(later, kNow));
        std::string flipped = value;
        flipped.back() = flipped.back() == '0' ? '1' : '0';
        CHECK_FALSE(signer.verify(flipped, kNow));
        std::string upper = value;
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        CHECK_FALSE(signer.verify(upper, kNow));
    }
    SUBCASE("another secret, admin user or admin password does not accept it") {
        CHECK_FALSE(AdminSessionSigner("other-secret", "admin", "pw").verify(value, kNow));
        CHECK_FALSE(AdminSessionSigner("server-secret", "root", "pw").verify(value, kNow));
        CHECK_FALSE(AdminSessionSigner("server-secret", "admin", "pw2").verify(value, kNow));
        // the user/password split is length-prefixed: "admi"+"npw" is not "admin"+"pw"
        CHECK_FALSE(AdminSessionSigner("server-secret", "admi", "npw").verify(value, kNow));
        CHECK(AdminSessionSigner("server-secret", "admin", "pw").verify(value, kNow));
    }
    SUBCASE("malformed values") {
        for (const std::string& bad : {std::string(), std::string("."), std::string("123"), "." + value, "x" + value,
                                      value + "0", value.substr(0, value.size() - 1), std::string("-1.") + std::string(64, 'a'),
                                      std::string(20, '9') + "." + std::string(64, 'a')})
            CHECK_MESSAGE(!signer.verify(bad, kNow), bad);
    }
}

TEST_CASE("cs admin: held-back answers") {
    DelayedAnswers delayed(3);
    std::vector<int> ran;
    CHECK(delayed.add(10, [&] { ran.push_back(1); }) == DelayedAnswers::Added::Held);
    CHECK(delayed.add(5, [&] { ran.push_back(2); }) == DelayedAnswers::Added::Held);
    CHECK(delayed.add(20, [&] { ran.push_back(3); }) == DelayedAnswers::Added::Held);
    CHECK(delayed.add(1, [&] { ran.push_back(4); }) == DelayedAnswers::Added::Full);
    CHECK(delayed.size() == 3);

    CHECK(delayed.take_due(4).empty());
    for (auto& answer : delayed.take_due(10)) answer();
    CHECK(ran == std::vector<int>{1, 2});
    CHECK(delayed.size() == 1);
    CHECK(delayed.add(15, [&] { ran.push_back(5); }) == DelayedAnswers::Added::Held);  // room again

    for (auto& answer : delayed.close()) answer();  // everything, due or not
    CHECK(ran == std::vector<int>{1, 2, 3, 5});
    CHECK(delayed.size() == 0);
    CHECK(delayed.add(1, [] {}) == DelayedAnswers::Added::Closed);
    CHECK(delayed.take_due(1000).empty());
}
