/*
 * bcryptprimitives.dll for Debian's Wine 8, for the tests only (never shipped).
 *
 * Rust's standard library (1.78 and later) draws its randomness on Windows from
 * ProcessPrng in bcryptprimitives.dll, which Windows 10 and 11 have and Wine 8 does not:
 * without this file every Rust program stops at start under Wine 8 with "Library
 * bcryptprimitives.dll ... not found". scripts/wine-run builds it with mingw-w64 and puts
 * it in the test Wine prefix's system32. ProcessPrng is RtlGenRandom (advapi32's
 * SystemFunction036), which Wine implements over the host's random source.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            /* ProcessPrng never fails on Windows: callers do not check. Do not hand back
               bytes that are not random. */
            TerminateProcess(GetCurrentProcess(), 0xC0000001);
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
