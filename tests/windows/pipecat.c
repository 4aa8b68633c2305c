/* Test tooling only, never shipped: a raw named-pipe client for the Wine smoke test. It
 * connects to the pipe named by argv[1], writes all of stdin to it, optionally waits argv[2]
 * milliseconds with the connection open (to play a client that stalls), then copies whatever
 * the daemon answers to stdout until the daemon closes the connection. Exit 0 if the pipe
 * opened, 2 if it did not. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <io.h>
#include <fcntl.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pipecat PIPE [HOLD_MS] < request > answer\n");
        return 2;
    }
    _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
    HANDLE pipe = CreateFileA(argv[1], GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (pipe == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "pipecat: cannot open %s: error %lu\n", argv[1], GetLastError());
        return 2;
    }
    char buffer[65536];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, stdin)) > 0) {
        DWORD written;
        if (!WriteFile(pipe, buffer, (DWORD)n, &written, NULL)) {
            fprintf(stderr, "pipecat: write stopped: error %lu\n", GetLastError());
            break;
        }
    }
    if (argc > 2)
        Sleep((DWORD)atol(argv[2]));
    for (;;) {
        DWORD got;
        if (!ReadFile(pipe, buffer, sizeof buffer, &got, NULL) || got == 0)
            break;
        fwrite(buffer, 1, got, stdout);
    }
    CloseHandle(pipe);
    return 0;
}
