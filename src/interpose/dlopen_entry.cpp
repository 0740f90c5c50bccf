// The shim's exported dlopen() and dlmopen(). glibc's dlopen() reads its own return address to
// learn who called it: the caller's object decides the namespace and the RPATH, RUNPATH and
// $ORIGIN of the search. A C wrapper that called the real dlopen() would make every request
// look like the shim's own, and a program whose plug-ins are found through its RUNPATH would
// stop finding them. So on x86-64 and aarch64 each entry point is a few instructions: ask
// usbnet_dlopen_answer() (arguments kept, the caller's return address passed along), and either
// return its handle or jump to the C library's function with the original arguments and the
// original return address still in place, as if the program had called it directly.
//
// Elsewhere a C wrapper does the same job. Its last call is a tail call, which GCC at -O2
// compiles to a jump (then the C library still sees the program's return address), but nothing
// guarantees it: compiled as a real call, the C library takes the shim for the caller and the
// program's RUNPATH/$ORIGIN is not searched (the RUNPATH test of dlopen_test.cpp fails so;
// USBNET_PORTABLE_DLOPEN builds this wrapper on x86-64 too, to check that).
#include "interpose/dlopen_hook.h"

#if defined(__x86_64__) && !defined(USBNET_PORTABLE_DLOPEN)

// System V AMD64: arguments in rdi, rsi, rdx, rcx; the answer comes back in rax:rdx. At entry
// rsp is 8 modulo 16 (the return address); the pushes bring it to 0 for the call.
asm(R"(
    .text
    .globl dlopen
    .type dlopen, @function
    .p2align 4
dlopen:
    .cfi_startproc
    endbr64
    pushq %rdi
    .cfi_adjust_cfa_offset 8
    pushq %rsi
    .cfi_adjust_cfa_offset 8
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    movq 24(%rsp), %rdx
    call usbnet_dlopen_answer
    addq $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq %rsi
    .cfi_adjust_cfa_offset -8
    popq %rdi
    .cfi_adjust_cfa_offset -8
    testq %rax, %rax
    jz 1f
    ret
1:
    jmp *%rdx
    .cfi_endproc
    .size dlopen, .-dlopen

    .globl dlmopen
    .type dlmopen, @function
    .p2align 4
dlmopen:
    .cfi_startproc
    endbr64
    pushq %rdi
    .cfi_adjust_cfa_offset 8
    pushq %rsi
    .cfi_adjust_cfa_offset 8
    pushq %rdx
    .cfi_adjust_cfa_offset 8
    movq 24(%rsp), %rcx
    call usbnet_dlmopen_answer
    testq %rax, %rax
    jz 1f
    addq $24, %rsp
    .cfi_adjust_cfa_offset -24
    ret
    .cfi_adjust_cfa_offset 24
1:
    movq %rdx, %rax
    popq %rdx
    .cfi_adjust_cfa_offset -8
    popq %rsi
    .cfi_adjust_cfa_offset -8
    popq %rdi
    .cfi_adjust_cfa_offset -8
    jmp *%rax
    .cfi_endproc
    .size dlmopen, .-dlmopen
)");

#elif defined(__aarch64__) && !defined(USBNET_PORTABLE_DLOPEN)

// AAPCS64: arguments in x0-x3, the answer in x0:x1, the return address in x30 (restored before
// the jump, so the C library reads the program's). x16 is the intra-procedure-call register
// (and a valid BTI "c" jump source).
asm(R"(
    .text
    .globl dlopen
    .type dlopen, %function
    .p2align 2
dlopen:
    .cfi_startproc
    hint 34
    stp x29, x30, [sp, #-32]!
    .cfi_def_cfa_offset 32
    .cfi_offset 29, -32
    .cfi_offset 30, -24
    mov x29, sp
    stp x0, x1, [sp, #16]
    mov x2, x30
    bl usbnet_dlopen_answer
    cbz x0, 1f
    ldp x29, x30, [sp], #32
    ret
1:
    mov x16, x1
    ldp x0, x1, [sp, #16]
    ldp x29, x30, [sp], #32
    br x16
    .cfi_endproc
    .size dlopen, .-dlopen

    .globl dlmopen
    .type dlmopen, %function
    .p2align 2
dlmopen:
    .cfi_startproc
    hint 34
    stp x29, x30, [sp, #-48]!
    .cfi_def_cfa_offset 48
    .cfi_offset 29, -48
    .cfi_offset 30, -40
    mov x29, sp
    stp x0, x1, [sp, #16]
    str x2, [sp, #32]
    mov x3, x30
    bl usbnet_dlmopen_answer
    cbz x0, 1f
    ldp x29, x30, [sp], #48
    ret
1:
    mov x16, x1
    ldp x0, x1, [sp, #16]
    ldr x2, [sp, #32]
    ldp x29, x30, [sp], #48
    br x16
    .cfi_endproc
    .size dlmopen, .-dlmopen
)");

#else

extern "C" __attribute__((visibility("default"))) void* dlopen(const char* file, int mode) {
  const UsbnetDlopenAnswer answer = usbnet_dlopen_answer(file, mode, __builtin_return_address(0));
  if (answer.handle) return answer.handle;
  return reinterpret_cast<void* (*)(const char*, int)>(answer.next)(file, mode);
}

extern "C" __attribute__((visibility("default"))) void* dlmopen(Lmid_t namespace_id,
                                                                const char* file, int mode) {
  const UsbnetDlopenAnswer answer =
      usbnet_dlmopen_answer(namespace_id, file, mode, __builtin_return_address(0));
  if (answer.handle) return answer.handle;
  return reinterpret_cast<void* (*)(Lmid_t, const char*, int)>(answer.next)(namespace_id, file,
                                                                            mode);
}

#endif
