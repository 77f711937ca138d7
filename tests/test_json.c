/* JSON reader: valid documents, every error class, limits. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../weights/json.h"
#include "lib/check.h"

static struct json *parse(const char *s, struct os_err *err)
{
    return json_parse(s, strlen(s), "test.json", err);
}

static void expect_error(const char *doc, const char *needle, const char *what)
{
    struct os_err err = {{0}};
    struct json *j = parse(doc, &err);
    int ok = j == NULL && strstr(err.msg, needle) != NULL && strstr(err.msg, "test.json") != NULL;
    check(ok, "rejects %s: \"%s\"", what, err.msg);
    json_free(j);
}

int main(void)
{
    struct os_err err = {{0}};
    struct json *j = parse("{\"a\": 1, \"b\": [true, false, null], \"c\": \"x\\u00e9\\ud83d\\ude00\\n\", "
                           "\"d\": -2.5e3, \"h\": 2.5, \"e\": {\"f\": 9007199254740993}, \"g\": 1.0}",
                           &err);
    if (check(j != NULL, "parses a nested document (%s)", j ? "" : err.msg)) {
        int64_t i;
        double d;
        check(json_get_int(j, "a", &i, "t", &err) == 0 && i == 1, "integer member");
        const struct json *b = json_get(j, "b");
        check(b && b->type == JSON_ARRAY && b->len == 3 && b->items[0].boolean == 1 && b->items[2].type == JSON_NULL,
              "array of literals");
        const struct json *c = json_get(j, "c");
        check(c && strcmp(c->str, "x\xc3\xa9\xf0\x9f\x98\x80\n") == 0, "escapes incl. a surrogate pair decode to UTF-8");
        check(json_get_num(j, "d", &d, "t", &err) == 0 && d == -2500.0, "exponent number");
        const struct json *e = json_get(j, "e");
        check(e && json_get(e, "f")->is_int && json_get(e, "f")->integer == 9007199254740993LL,
              "int64 beyond 2^53 kept exactly");
        check(json_get_int(j, "g", &i, "t", &err) == 0 && i == 1, "1.0 accepted where an int is meant");
        check(json_get_int(j, "h", &i, "cfg", &err) == -1 && strstr(err.msg, "must be an integer"),
              "2.5 as an int rejected: %s", err.msg);
        check(json_get_int(j, "zz", &i, "cfg", &err) == -1 && strstr(err.msg, "missing required key \"zz\""),
              "missing key message: %s", err.msg);
        int64_t list[3];
        check(json_get_int_list(j, "a", list, 3, "t", &err) == 0 && list[2] == 1, "scalar broadcast to a list");
        check(json_get_int_list(j, "b", list, 3, "cfg", &err) == -1, "list of non-integers rejected: %s", err.msg);
        json_free(j);
    }

    j = parse("  [1, 2]\n", &err);
    check(j && j->len == 2, "whitespace around the value");
    json_free(j);
    j = parse("{\"x\": NaN, \"y\": -Infinity}", &err);
    check(j && isnan(json_get(j, "x")->number) && isinf(json_get(j, "y")->number),
          "Python's NaN / -Infinity accepted");
    json_free(j);

    expect_error("", "unexpected end", "empty input");
    expect_error("{\"a\": 1,}", "expected a string key", "trailing comma in object");
    expect_error("[1 2]", "expected ',' or ']'", "missing comma");
    expect_error("{\"a\": 1, \"a\": 2}", "duplicate key \"a\"", "duplicate key");
    expect_error("\"abc", "unterminated string", "unterminated string");
    expect_error("\"a\\q\"", "unknown escape", "bad escape");
    expect_error("\"\\ud800\"", "surrogate", "lone surrogate escape");
    expect_error("\"\xff\"", "invalid UTF-8", "invalid UTF-8 byte");
    expect_error("\"\xc0\xaf\"", "invalid UTF-8", "overlong UTF-8");
    expect_error("\"a\nb\"", "control character", "raw newline in string");
    expect_error("01", "trailing characters", "leading zero");
    expect_error("1.", "digit expected", "bare decimal point");
    expect_error("tru", "unexpected character", "truncated literal");
    expect_error("{} {}", "trailing characters", "two values");
    expect_error("{\"a\":\n  [1,\n   ?]}", "line 3, column 4", "position in message");

    char deep[300];
    memset(deep, '[', 200);
    deep[200] = '\0';
    expect_error(deep, "nesting deeper than 64", "200 levels of nesting");
    char ok64[200];
    memset(ok64, '[', 64);
    memset(ok64 + 64, ']', 64);
    ok64[128] = '\0';
    j = parse(ok64, &err);
    check(j != NULL, "64 levels of nesting accepted");
    json_free(j);

    /* big object: duplicate detection must stay fast (vocab.json has 49k keys) */
    size_t n = 60000, cap = n * 24 + 16, pos = 0;
    char *big = malloc(cap);
    pos += (size_t)snprintf(big + pos, cap - pos, "{");
    for (size_t i = 0; i < n; i++) pos += (size_t)snprintf(big + pos, cap - pos, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    snprintf(big + pos, cap - pos, "}");
    j = parse(big, &err);
    check(j && j->len == n && json_get(j, "k59999")->integer == 59999, "60000-key object");
    json_free(j);
    free(big);
    return check_summary();
}
