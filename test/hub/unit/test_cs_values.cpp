// Value formats of the channelstream API: Python's isoformat() and str(UUID).
#include <doctest/doctest.h>

#include <set>

#include "hub/channelstream/values.hpp"

using namespace hub::channelstream;

TEST_CASE("cs values: timestamps as Python's isoformat prints them") {
    CHECK(iso_timestamp(1'600'000'000'000'000) == "2020-09-13T12:26:40");
    CHECK(iso_timestamp(1'600'000'000'123'456) == "2020-09-13T12:26:40.123456");
    CHECK(iso_timestamp(1'600'000'000'000'001) == "2020-09-13T12:26:40.000001");
    CHECK(iso_timestamp(0) == "1970-01-01T00:00:00");
    CHECK(iso_timestamp(951'782'400'000'000) == "2000-02-29T00:00:00");
    CHECK(iso_timestamp(-1) == "1969-12-31T23:59:59.999999");
    const Micros now = now_micros();
    CHECK(now > 1'600'000'000'000'000);
}

TEST_CASE("cs values: date-times read as marshmallow reads them") {
    CHECK(normalize_iso_datetime("2010-01-01T01:01") == "2010-01-01T01:01:00");
    CHECK(normalize_iso_datetime("2010-01-01T01:01:02") == "2010-01-01T01:01:02");
    CHECK(normalize_iso_datetime("2010-01-01 01:01:02.5") == "2010-01-01T01:01:02.500000");
    CHECK(normalize_iso_datetime("2010-01-01T01:01:02.1234567") == "2010-01-01T01:01:02.123456");
    CHECK(normalize_iso_datetime("2010-01-01") == "2010-01-01T00:00:00");
    CHECK(normalize_iso_datetime("2010-01-01T01:01:02Z") == "2010-01-01T01:01:02Z");
    CHECK(normalize_iso_datetime("2010-01-01T01:01:02+00:00") == "2010-01-01T01:01:02Z");
    CHECK(normalize_iso_datetime("2010-01-01T01:01:02+0200") == "2010-01-01T01:01:02+02:00");
    CHECK(normalize_iso_datetime("2000-02-29T00:00") == "2000-02-29T00:00:00");
    for (const char* bad : {"", "yesterday", "2010-13-01", "2010-02-30", "2019-02-29T00:00", "2010-01-01T24:00", "2010-01-01T01:01:02.",
                            "2010-01-01T01:01:02 extra", "2010-1-1"}) {
        CHECK_MESSAGE(!normalize_iso_datetime(bad).has_value(), bad);
    }
}

TEST_CASE("cs values: UUIDs") {
    SUBCASE("random ones are version 4 and distinct") {
        std::set<std::string> seen;
        for (int i = 0; i < 100; ++i) {
            const std::string id = random_uuid();
            REQUIRE(id.size() == 36);
            CHECK(id[14] == '4');
            CHECK(std::string("89ab").find(id[19]) != std::string::npos);
            seen.insert(id);
        }
        CHECK(seen.size() == 100);
    }
    SUBCASE("derived ones are the same for the same seed and index, and differ otherwise") {
        CHECK(derive_uuid("op-1", 0) == derive_uuid("op-1", 0));
        CHECK(derive_uuid("op-1", 0) != derive_uuid("op-1", 1));
        CHECK(derive_uuid("op-1", 0) != derive_uuid("op-2", 0));
        CHECK(canonical_uuid(derive_uuid("x", 3)) == derive_uuid("x", 3));
    }
    SUBCASE("canonical form as Python's uuid.UUID accepts and prints it") {
        const std::string expected = "12345678-1234-5678-1234-567812345678";
        CHECK(canonical_uuid("12345678-1234-5678-1234-567812345678") == expected);
        CHECK(canonical_uuid("12345678123456781234567812345678") == expected);
        CHECK(canonical_uuid("{12345678-1234-5678-1234-567812345678}") == expected);
        CHECK(canonical_uuid("urn:uuid:12345678-1234-5678-1234-567812345678") == expected);
        CHECK(canonical_uuid("12345678-1234-5678-1234-56781234567A") == "12345678-1234-5678-1234-56781234567a");
        CHECK_FALSE(canonical_uuid("1234").has_value());
        CHECK_FALSE(canonical_uuid("12345678-1234-5678-1234-5678123456789").has_value());
        CHECK_FALSE(canonical_uuid("g2345678-1234-5678-1234-567812345678").has_value());
        CHECK_FALSE(canonical_uuid("").has_value());
    }
}
