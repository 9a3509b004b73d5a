/*
 * Counts the guest instructions a program executes under qemu-user: each translated block adds
 * its instruction count to one counter every time it runs. Instructions are not cycles, but they
 * are repeatable run to run, which timing under emulation is not (benches/arm/side_by_side.sh).
 *
 *   qemu-aarch64 -cpu max -plugin ./insn_count.so,outfile=/tmp/n ./program args
 *
 * writes the count (a decimal number and a newline) to `outfile`, or to stderr without one.
 *
 * QEMU's plugin API, version 1 (qemu 7.2), through qemu_plugin_v1.h (no QEMU header needed).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_v1.h"

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/*
 * The count is added by code qemu inlines into each translated block (no call per block: a call
 * made the emulation several times slower). Guest threads run on host threads, so blocks that
 * run at the same instant on two threads may lose an addition: the benchmarks count a program
 * that computes on one thread at a time (bench-infer with one inference thread).
 */
static uint64_t executed;
static char outfile[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_guest_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    uint64_t n = __atomic_load_n(&executed, __ATOMIC_RELAXED);
    FILE *f = outfile[0] ? fopen(outfile, "w") : stderr;
    if (!f) {
        fprintf(stderr, "insn_count: cannot write %s\n", outfile);
        return;
    }
    fprintf(f, "%" PRIu64 "\n", n);
    if (f != stderr) {
        fclose(f);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const struct qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info;
    if (plugin_outfile("insn_count", argc, argv, outfile, sizeof outfile) != 0) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
