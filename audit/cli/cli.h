/*
 * cli.h - the command-line front door: one command table, per-command
 * options and usage, and the one place where outcomes become exit codes.
 */
#ifndef KVAUDIT_CLI_H
#define KVAUDIT_CLI_H

/* Exit codes (DESIGN.md, README "Exit codes"). */
enum kv_exit {
	KV_EXIT_OK = 0,          /* no failing finding at or above --fail-on */
	KV_EXIT_FINDINGS = 1,    /* failing findings */
	KV_EXIT_USAGE = 2,       /* bad usage or bad input */
	KV_EXIT_INCOMPLETE = 3,  /* some facts could not be read: findings are "error" */
	KV_EXIT_FIX = 4,         /* a fix or rollback did not fully apply */
	KV_EXIT_AUTH = 5,        /* authentication failed */
};

/* Runs kvaudit with argv; returns the exit code.  Never calls exit(). */
int kv_main(int argc, char **argv);

#endif
