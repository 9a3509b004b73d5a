/*
 * What the instruction-counting plugins (insn_count.c, insn_profile.c) use of QEMU's plugin API,
 * version 1 (qemu 7.2), declared here rather than included: the few calls and types, as QEMU
 * documents them (include/qemu/qemu-plugin.h). The symbols are resolved against the qemu binary
 * when it loads a plugin. Also the one argument both plugins take, `outfile=PATH`.
 */
#ifndef PRESCREEN_QEMU_PLUGIN_V1_H
#define PRESCREEN_QEMU_PLUGIN_V1_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                                  qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                                     enum qemu_plugin_op op, void *ptr,
                                                     uint64_t imm);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                           void *userdata);

/*
 * Reads the plugin's arguments into `outfile` (left empty without `outfile=`); returns -1, having
 * said why on stderr as `plugin`, for anything else.
 */
static int plugin_outfile(const char *plugin, int argc, char **argv, char *outfile, size_t size) {
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "outfile=", 8) == 0 && strlen(argv[i] + 8) < size) {
            strcpy(outfile, argv[i] + 8);
        } else {
            fprintf(stderr, "%s: unknown argument %s (expected outfile=PATH)\n", plugin, argv[i]);
            return -1;
        }
    }
    return 0;
}

#endif
