/* onestep — the command-line program (a thin layer over the library). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("onestep 0.1\n");
        return 0;
    }
    fprintf(stderr, "onestep: nothing implemented yet\n");
    return 2;
}
