/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include "upm_match.h"
#include "upm_test.h"
#include "upm_test_msg.h"

static upm_msg msg(const char *owner, const char *photo, const char *file, const char *job,
                   const char *session, const char *project)
{
    return upm_test_msg("progress", owner, photo, file, job, session, project);
}

static void test_owner(void)
{
    const char *none[UPM_F__COUNT] = { 0 };
    upm_msg mine = msg("alice", "", "", "", "s1", "");
    upm_msg theirs = msg("bob", "", "", "", "s1", "");
    upm_msg scoped = msg("", "", "", "", "s1", "");

    UPM_CHECK(upm_match("alice", none, UPM_F_OWNER, &mine));
    UPM_CHECK(!upm_match("alice", none, UPM_F_OWNER, &theirs));
    /* A message to a scope never reaches a stream of the user's own
     * messages, not even one whose user is "" by mistake. */
    UPM_CHECK(!upm_match("alice", none, UPM_F_OWNER, &scoped));
    UPM_CHECK(!upm_match("", none, UPM_F_OWNER, &scoped));
    UPM_CHECK(!upm_match(NULL, none, UPM_F_OWNER, &scoped));
    /* Prefixes are not the same user. */
    UPM_CHECK(!upm_match("alic", none, UPM_F_OWNER, &mine));
}

static void test_narrowed(void)
{
    const char *s1[UPM_F__COUNT] = { 0 }, *s2[UPM_F__COUNT] = { 0 };
    upm_msg mine_s1 = msg("alice", "", "", "", "s1", "");
    upm_msg mine_s2 = msg("alice", "", "", "", "s2", "");
    upm_msg mine_none = msg("alice", "", "", "", "", "");
    upm_msg bob_s1 = msg("bob", "", "", "", "s1", "");
    upm_msg scoped_s1 = msg("", "", "", "", "s1", "");
    upm_msg scoped_s2 = msg("", "", "", "", "s2", "");

    s1[UPM_F_SESSION] = "s1";
    s2[UPM_F_SESSION] = "s2";
    /* Narrowed, not granted: the user's own messages of that session only. */
    UPM_CHECK(upm_match("alice", s1, UPM_F_OWNER, &mine_s1));
    UPM_CHECK(!upm_match("alice", s1, UPM_F_OWNER, &mine_s2));
    UPM_CHECK(!upm_match("alice", s1, UPM_F_OWNER, &mine_none));
    UPM_CHECK(!upm_match("alice", s1, UPM_F_OWNER, &bob_s1));
    UPM_CHECK(!upm_match("alice", s1, UPM_F_OWNER, &scoped_s1));
    /* Granted: the session's messages whoever owns them, and those
     * addressed to the session. */
    UPM_CHECK(upm_match("alice", s1, UPM_F_SESSION, &mine_s1));
    UPM_CHECK(upm_match("alice", s1, UPM_F_SESSION, &bob_s1));
    UPM_CHECK(upm_match("alice", s1, UPM_F_SESSION, &scoped_s1));
    UPM_CHECK(!upm_match("alice", s1, UPM_F_SESSION, &scoped_s2));
    UPM_CHECK(!upm_match("alice", s1, UPM_F_SESSION, &mine_s2));
    UPM_CHECK(!upm_match("alice", s1, UPM_F_SESSION, &mine_none));
    UPM_CHECK(upm_match("alice", s2, UPM_F_SESSION, &scoped_s2));
}

static void test_narrowed_elsewhere(void)
{
    const char *sc[UPM_F__COUNT] = { 0 };
    upm_msg p1_j1 = msg("", "", "", "j1", "", "p1");
    upm_msg p1_j2 = msg("", "", "", "j2", "", "p1");
    upm_msg p1 = msg("", "", "", "", "", "p1");
    upm_msg p2_j1 = msg("", "", "", "j1", "", "p2");

    /* Granted project p1, also narrowed to job j1: only p1's j1. */
    sc[UPM_F_PROJECT] = "p1";
    sc[UPM_F_JOB] = "j1";
    UPM_CHECK(upm_match("u", sc, UPM_F_PROJECT, &p1_j1));
    UPM_CHECK(!upm_match("u", sc, UPM_F_PROJECT, &p1_j2));
    UPM_CHECK(!upm_match("u", sc, UPM_F_PROJECT, &p1));
    UPM_CHECK(!upm_match("u", sc, UPM_F_PROJECT, &p2_j1));
    /* Routed via the job instead: the project narrowing still holds. */
    UPM_CHECK(upm_match("u", sc, UPM_F_JOB, &p1_j1));
    UPM_CHECK(!upm_match("u", sc, UPM_F_JOB, &p2_j1));
    /* A photo narrowing too. */
    sc[UPM_F_PHOTO] = "ph";
    UPM_CHECK(!upm_match("u", sc, UPM_F_PROJECT, &p1_j1));
}

static void test_bad_routes(void)
{
    const char *sc[UPM_F__COUNT] = { 0 };
    upm_msg m = msg("", "ph", "f", "j", "s", "p");
    /* A route without its id, or through a field no token grants, or out
     * of range, delivers nothing. */
    UPM_CHECK(!upm_match("u", sc, UPM_F_SESSION, &m));
    sc[UPM_F_SESSION] = "";
    UPM_CHECK(!upm_match("u", sc, UPM_F_SESSION, &m));
    sc[UPM_F_SESSION] = NULL;
    sc[UPM_F_PHOTO] = "ph";
    UPM_CHECK(!upm_match("u", sc, UPM_F_PHOTO, &m));
    UPM_CHECK(!upm_match("u", sc, UPM_F_TYPE, &m));
    UPM_CHECK(!upm_match("u", sc, UPM_F__COUNT, &m));
    UPM_CHECK(!upm_match("u", sc, -1, &m));
    sc[UPM_F_PHOTO] = NULL;
    sc[UPM_F_FILE] = "f";
    UPM_CHECK(upm_match("u", sc, UPM_F_FILE, &m));
    /* An empty field of the message is not a match for an empty grant. */
    {
        upm_msg e = msg("", "", "", "", "", "");
        const char *z[UPM_F__COUNT] = { 0 };
        z[UPM_F_JOB] = "";
        UPM_CHECK(!upm_match("u", z, UPM_F_JOB, &e));
    }
}

int main(void)
{
    apr_initialize();
    test_owner();
    test_narrowed();
    test_narrowed_elsewhere();
    test_bad_routes();
    apr_terminate();
    UPM_TEST_DONE("test_match");
}
