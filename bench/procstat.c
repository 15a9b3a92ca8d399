/* SPDX-License-Identifier: Apache-2.0 */
/* Memory and CPU of a server: a process and all its descendants.
 *
 *   procstat PID
 *
 * prints one line:
 *   pss_kb=.. rss_kb=.. uss_kb=.. cpu_ticks=.. procs=.. threads=.. hz=..
 *
 *   procstat --each PID
 *
 * prints that line per process instead, each starting with pid=.. ppid=..
 * (the leak soak follows every httpd child by pid).
 *
 * PSS (from /proc/<pid>/smaps_rollup) shares each shared page among the
 * processes mapping it, so its sum is the user-space memory the server
 * really uses; RSS counts shared pages once per process; USS counts only
 * private pages.  cpu_ticks sums user+system time of the processes alive
 * now plus what the root has collected from children that exited. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int pid, ppid;
} pent;

static int read_stat(int pid, int *ppid, unsigned long long *ticks, unsigned long long *cticks,
                     long *threads)
{
    char path[64], buf[2048], *p;
    FILE *f;
    unsigned long long ut, st, cut, cst;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    if (!fgets(buf, sizeof(buf), f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    /* The command name may hold spaces and parentheses: fields start after
     * the last ')'. */
    p = strrchr(buf, ')');
    if (!p) {
        return -1;
    }
    if (sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu %*d %*d "
               "%ld", ppid, &ut, &st, &cut, &cst, threads) != 6) {
        return -1;
    }
    *ticks = ut + st;
    *cticks = cut + cst;
    return 0;
}

static void read_mem(int pid, unsigned long long *pss, unsigned long long *rss,
                     unsigned long long *uss)
{
    char path[64], line[256];
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
    f = fopen(path, "r");
    if (!f) {
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "Pss: %llu", &v) == 1) {
            *pss += v;
        }
        else if (sscanf(line, "Rss: %llu", &v) == 1) {
            *rss += v;
        }
        else if (sscanf(line, "Private_Clean: %llu", &v) == 1
                 || sscanf(line, "Private_Dirty: %llu", &v) == 1) {
            *uss += v;
        }
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    DIR *d;
    struct dirent *e;
    pent *all = NULL;
    size_t n = 0, cap = 0, i;
    int root, *tree, ntree = 0, changed = 1, each = 0;
    unsigned long long pss = 0, rss = 0, uss = 0, ticks = 0;
    long threads = 0;
    if (argc == 3 && strcmp(argv[1], "--each") == 0) {
        each = 1;
        argv++;
        argc--;
    }
    if (argc != 2 || (root = atoi(argv[1])) <= 0) {
        fprintf(stderr, "usage: procstat [--each] PID\n");
        return 2;
    }
    d = opendir("/proc");
    if (!d) {
        return 1;
    }
    while ((e = readdir(d))) {
        int pid, ppid;
        unsigned long long t, ct;
        long th;
        if (!isdigit((unsigned char)e->d_name[0])) {
            continue;
        }
        pid = atoi(e->d_name);
        if (read_stat(pid, &ppid, &t, &ct, &th) < 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            all = realloc(all, cap * sizeof(*all));
        }
        all[n].pid = pid;
        all[n].ppid = ppid;
        n++;
    }
    closedir(d);
    tree = calloc(n + 1, sizeof(int));
    tree[ntree++] = root;
    while (changed) {
        changed = 0;
        for (i = 0; i < n; i++) {
            int j, in = 0, parent_in = 0;
            for (j = 0; j < ntree; j++) {
                in |= tree[j] == all[i].pid;
                parent_in |= tree[j] == all[i].ppid;
            }
            if (!in && parent_in) {
                tree[ntree++] = all[i].pid;
                changed = 1;
            }
        }
    }
    for (i = 0; i < (size_t)ntree; i++) {
        int ppid;
        unsigned long long t, ct;
        long th;
        if (read_stat(tree[i], &ppid, &t, &ct, &th) < 0) {
            if (tree[i] == root) {
                fprintf(stderr, "procstat: no process %d\n", root);
                return 1;
            }
            continue;
        }
        if (each) {
            unsigned long long p1 = 0, r1 = 0, u1 = 0;
            read_mem(tree[i], &p1, &r1, &u1);
            printf("pid=%d ppid=%d pss_kb=%llu rss_kb=%llu uss_kb=%llu cpu_ticks=%llu threads=%ld "
                   "hz=%ld\n", tree[i], ppid, p1, r1, u1, t + (tree[i] == root ? ct : 0), th,
                   sysconf(_SC_CLK_TCK));
            continue;
        }
        ticks += t + (tree[i] == root ? ct : 0);
        threads += th;
        read_mem(tree[i], &pss, &rss, &uss);
    }
    if (each) {
        return 0;
    }
    printf("pss_kb=%llu rss_kb=%llu uss_kb=%llu cpu_ticks=%llu procs=%d threads=%ld hz=%ld\n",
           pss, rss, uss, ticks, ntree, threads, sysconf(_SC_CLK_TCK));
    return 0;
}
