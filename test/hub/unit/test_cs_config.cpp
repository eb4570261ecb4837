// The channelstream settings: INI (channelstream's own ini files), environment, flags, in
// that order of precedence, and the example config.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

#include "hub/channelstream/config.hpp"

using namespace hub::channelstream;
using namespace std::chrono_literals;

namespace {

struct FakeEnv {
    std::map<std::string, std::string> values;
    GetEnv getenv() const {
        return [this](const char* name) -> const char* {
            auto it = values.find(name);
            return it == values.end() ? nullptr : it->second.c_str();
        };
    }
};

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text) {
        char name[] = "/tmp/cs_config_XXXXXX";
        const int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        close(fd);
        path = name;
        std::ofstream(path) << text;
    }
    ~TempFile() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("cs config: defaults are channelstream's") {
    const ChannelstreamConfig c;
    CHECK(c.secret == "secret");
    CHECK(c.admin_user == "admin");
    CHECK(c.admin_secret == "admin_secret");
    CHECK(c.validate_requests);
    CHECK(c.allow_posting_from == std::vector<std::string>{"127.0.0.1", "::1"});
    CHECK(c.allow_cors.empty());
    CHECK(c.wake_connections_after == 5s);
    CHECK(c.gc_conns_after == 15s);
    CHECK(c.gc_users_after == 86400s);
    CHECK(c.heartbeat_interval == 5s);
    CHECK(c.signature_max_age == 60s);
    CHECK_FALSE(c.host.has_value());
}

TEST_CASE("cs config: single values") {
    ChannelstreamConfig c;
    SUBCASE("booleans as pyramid's asbool reads them") {
        for (const char* yes : {"true", "True", "1", "yes", "on", "y", "t"}) {
            c.validate_requests = false;
            CHECK_FALSE(set_config_value(c, "validate_requests", yes).has_value());
            CHECK(c.validate_requests);
        }
        for (const char* no : {"false", "0", "no", "off", "OFF"}) {
            c.validate_requests = true;
            CHECK_FALSE(set_config_value(c, "validate_requests", no).has_value());
            CHECK_FALSE(c.validate_requests);
        }
        CHECK(set_config_value(c, "validate_requests", "maybe").has_value());
    }
    SUBCASE("lists split on commas and lines, blanks dropped") {
        CHECK_FALSE(set_config_value(c, "allow_posting_from", "127.0.0.1,\n   192.168.1.1, ,10.0.0.1,").has_value());
        CHECK(c.allow_posting_from == std::vector<std::string>{"127.0.0.1", "192.168.1.1", "10.0.0.1"});
        CHECK_FALSE(set_config_value(c, "allow_cors", "").has_value());
        CHECK(c.allow_cors.empty());
    }
    SUBCASE("numbers are range-checked") {
        CHECK_FALSE(set_config_value(c, "port", "8000").has_value());
        CHECK(c.port == 8000);
        CHECK(set_config_value(c, "port", "70000").has_value());
        CHECK(set_config_value(c, "port", "80a").has_value());
        CHECK(set_config_value(c, "gc_conns_after", "0").has_value());
        CHECK_FALSE(set_config_value(c, "gc_conns_after", "2").has_value());
        CHECK(c.gc_conns_after == 2s);
    }
    SUBCASE("dashes work for underscores; unknown keys are refused without echoing the value") {
        CHECK_FALSE(set_config_value(c, "admin-secret", "pw").has_value());
        CHECK(c.admin_secret == "pw");
        const auto error = set_config_value(c, "no_such_key", "hidden-value");
        REQUIRE(error.has_value());
        CHECK(error->find("no_such_key") != std::string::npos);
        CHECK(error->find("hidden-value") == std::string::npos);
        CHECK(set_config_value(c, "secret", "   ").has_value());
    }
    SUBCASE("url_prefix is normalised") {
        CHECK_FALSE(set_config_value(c, "url_prefix", "cs/").has_value());
        CHECK(c.url_prefix == "/cs");
    }
}

TEST_CASE("cs config: INI text") {
    ChannelstreamConfig c;
    SUBCASE("channelstream's own example ini, continuation lines included") {
        const char* ini =
            "[channelstream]\n"
            "admin_secret = admin_secret2\n"
            "secret = secret2\n"
            "port = 8001\n"
            "demo = true\n"
            "allow_posting_from = 127.0.0.1,\n"
            "                     192.168.1.1\n";
        REQUIRE_FALSE(apply_ini_text(c, ini).has_value());
        CHECK(c.secret == "secret2");
        CHECK(c.admin_secret == "admin_secret2");
        CHECK(c.port == 8001);
        CHECK(c.demo);
        CHECK(c.allow_posting_from == std::vector<std::string>{"127.0.0.1", "192.168.1.1"});
    }
    SUBCASE("comments, other sections ignored, [hub] kept raw") {
        const char* ini =
            "; a comment\n# another\n[app:main]\nsecret = not-ours\n"
            "[channelstream]\nsecret = s\n[hub]\nredis = redis://127.0.0.1:6379\n";
        REQUIRE_FALSE(apply_ini_text(c, ini).has_value());
        CHECK(c.secret == "s");
        REQUIRE(c.hub_settings.size() == 1);
        CHECK(c.hub_settings[0].first == "redis");
        CHECK(c.hub_settings[0].second == "redis://127.0.0.1:6379");
    }
    SUBCASE("[channel:PATTERN] sections are kept in file order, pattern case kept") {
        const char* ini =
            "[Channel:Chat.*]\ntypes = json\nrequired = user:string,\n    text:string\n"
            "[channelstream]\nsecret = s\n[channel:news]\nmax_bytes = 10\n";
        REQUIRE_FALSE(apply_ini_text(c, ini).has_value());
        REQUIRE(c.channel_sections.size() == 2);
        CHECK(c.channel_sections[0].pattern == "Chat.*");
        REQUIRE(c.channel_sections[0].settings.size() == 3);  // a continued value comes twice
        CHECK(c.channel_sections[0].settings[0] == std::pair<std::string, std::string>{"types", "json"});
        CHECK(c.channel_sections[0].settings[2].second == "text:string");
        CHECK(c.channel_sections[1].pattern == "news");
        CHECK(c.channel_sections[1].settings[0].second == "10");
    }
    SUBCASE("errors name the line and the key") {
        auto error = apply_ini_text(c, "[channelstream]\nsecret = s\nbogus = 1\n");
        REQUIRE(error.has_value());
        CHECK(error->find("line 3") != std::string::npos);
        CHECK(error->find("bogus") != std::string::npos);
        error = apply_ini_text(c, "[channelstream]\nport = many\n");
        REQUIRE(error.has_value());
        CHECK(error->find("port") != std::string::npos);
        error = apply_ini_text(c, "[channelstream]\nthis is not ini\n");
        REQUIRE(error.has_value());
        CHECK(error->find("line 2") != std::string::npos);
    }
    SUBCASE("a missing file is a clear error") {
        const auto error = apply_ini_file(c, "/nonexistent/cs.ini");
        REQUIRE(error.has_value());
        CHECK(error->find("/nonexistent/cs.ini") != std::string::npos);
    }
}

TEST_CASE("cs config: precedence defaults < INI < environment < flags") {
    TempFile ini("[channelstream]\nsecret = from-ini\nadmin_user = ini-admin\nport = 8001\nallow_cors = example.com\n");
    FakeEnv env;
    env.values["CHANNELSTREAM_ADMIN_USER"] = "env-admin";
    env.values["CHANNELSTREAM_PORT"] = "8002";
    std::vector<std::string> args{"--admin-user=flag-admin", "-i", ini.path, "--port=8003", "--other-flag", "x", "--gc-conns-after", "7",
                                  "--url-prefix", "/api", "--host=0.0.0.0"};
    const ConfigLoad load = load_config(args, env.getenv());
    REQUIRE_FALSE(load.error.has_value());
    CHECK(load.config.secret == "from-ini");          // only the INI sets it
    CHECK(load.config.admin_user == "flag-admin");    // a flag beats both
    CHECK(load.config.port == 8002);                  // the environment beats the INI
                                                      // (--port is the hub's flag, left for it)
    CHECK(load.config.gc_conns_after == 7s);
    CHECK(load.config.allow_cors == std::vector<std::string>{"example.com"});
    CHECK(load.config.admin_secret == "admin_secret");  // untouched default
    // flags it does not know are left for the caller, in order
    CHECK(args == std::vector<std::string>{"--port=8003", "--other-flag", "x", "--url-prefix", "/api", "--host=0.0.0.0"});
    CHECK(load.config.url_prefix.empty());

    SUBCASE("CHANNELSTREAM_INI names the file when no -i is given") {
        FakeEnv env2;
        env2.values["CHANNELSTREAM_INI"] = ini.path;
        std::vector<std::string> none;
        const ConfigLoad from_env = load_config(none, env2.getenv());
        REQUIRE_FALSE(from_env.error.has_value());
        CHECK(from_env.config.secret == "from-ini");
    }
    SUBCASE("a bad value anywhere stops the load with its source named") {
        FakeEnv bad_env;
        bad_env.values["CHANNELSTREAM_VALIDATE_REQUESTS"] = "perhaps";
        std::vector<std::string> none;
        const ConfigLoad failed = load_config(none, bad_env.getenv());
        REQUIRE(failed.error.has_value());
        CHECK(failed.error->find("CHANNELSTREAM_VALIDATE_REQUESTS") != std::string::npos);
        std::vector<std::string> dangling{"--secret"};
        CHECK(load_config(dangling, FakeEnv{}.getenv()).error.has_value());
    }
}

TEST_CASE("cs config: the example config documents every key and loads back to the defaults") {
    const std::string text = example_config();
    for (const char* key : {"secret", "admin_user", "admin_secret", "allow_posting_from", "allow_cors", "validate_requests",
                            "gc_conns_after", "gc_users_after", "wake_connections_after", "require_strong_signatures"}) {
        CHECK_MESSAGE(text.find(std::string(key) + " = ") != std::string::npos, key);
    }
    CHECK(text.find("# host = ") != std::string::npos);
    ChannelstreamConfig loaded;
    loaded.secret = "changed";
    loaded.allow_posting_from.clear();
    REQUIRE_FALSE(apply_ini_text(loaded, text).has_value());
    const ChannelstreamConfig defaults;
    CHECK(loaded.secret == defaults.secret);
    CHECK(loaded.allow_posting_from == defaults.allow_posting_from);
    CHECK(loaded.validate_requests == defaults.validate_requests);
    CHECK(loaded.gc_conns_after == defaults.gc_conns_after);
    CHECK(loaded.max_pending_frames == defaults.max_pending_frames);
    CHECK_FALSE(loaded.port.has_value());
}
