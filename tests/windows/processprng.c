/* Test tooling only, never shipped: Wine 8's bcryptprimitives.dll lacks ProcessPrng, which
 * Rust's standard library calls for random bytes on Windows. This DLL provides it on top of
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. tests/windows/run.sh builds it
 * into the Wine prefix used for the smoke test. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
