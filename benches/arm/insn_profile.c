/*
 * A guest instruction profile under qemu-user: every translated block gets its own counter of
 * executions (inlined, no call per block), and at exit each block that ran is written as one line,
 * `address instructions executions` (address in hex, the guest's virtual address).
 * benches/arm/profile.py runs a program twice under it and attributes the difference per function.
 *
 *   qemu-aarch64 -cpu cortex-a76 -plugin ./insn_profile.so,outfile=/tmp/blocks ./program args
 *
 * QEMU's plugin API, version 1 (qemu 7.2), through qemu_plugin_v1.h, as insn_count.c.
 * A block translated twice (after its code was flushed) gets two lines; the reader adds them up.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_v1.h"

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

struct block {
    uint64_t vaddr, insns, executions;
};

/* Blocks beyond this many are not counted; the exit line says how many were missed. */
#define MAX_BLOCKS (1u << 22)
static struct block *blocks;
static uint64_t translated;
static char outfile[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    uint64_t i = __atomic_fetch_add(&translated, 1, __ATOMIC_RELAXED);
    if (i >= MAX_BLOCKS) {
        return;
    }
    blocks[i].vaddr = qemu_plugin_tb_vaddr(tb);
    blocks[i].insns = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &blocks[i].executions, 1);
}

static void on_guest_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    FILE *f = fopen(outfile, "w");
    if (!f) {
        fprintf(stderr, "insn_profile: cannot write %s\n", outfile);
        return;
    }
    uint64_t n = __atomic_load_n(&translated, __ATOMIC_RELAXED);
    for (uint64_t i = 0; i < n && i < MAX_BLOCKS; i++) {
        if (blocks[i].executions) {
            fprintf(f, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", blocks[i].vaddr, blocks[i].insns,
                    blocks[i].executions);
        }
    }
    if (n > MAX_BLOCKS) {
        fprintf(stderr, "insn_profile: %" PRIu64 " blocks not counted\n", n - MAX_BLOCKS);
    }
    fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const struct qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info;
    if (plugin_outfile("insn_profile", argc, argv, outfile, sizeof outfile) != 0) {
        return -1;
    }
    if (!outfile[0]) {
        fprintf(stderr, "insn_profile: outfile=PATH is required\n");
        return -1;
    }
    blocks = calloc(MAX_BLOCKS, sizeof *blocks);
    if (!blocks) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
