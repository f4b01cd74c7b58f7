/* main.c - kvaudit's thin main: everything lives in the kvcore library. */
#include "audit/cli/cli.h"

int main(int argc, char **argv)
{
	return kv_main(argc, argv);
}
