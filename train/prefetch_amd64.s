#include "textflag.h"

// func prefetch(addr unsafe.Pointer, n int)
// Issues PREFETCHT0 for every 64-byte line of the n bytes starting at addr.
TEXT ·prefetch(SB), NOSPLIT, $0-16
	MOVQ addr+0(FP), AX
	MOVQ n+8(FP), CX
	ADDQ AX, CX
loop:
	CMPQ AX, CX
	JAE done
	PREFETCHT0 (AX)
	ADDQ $64, AX
	JMP loop
done:
	RET
