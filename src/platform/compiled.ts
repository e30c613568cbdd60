/** True inside the executable built by `bun build --compile`: its modules live in /$bunfs. */
export const COMPILED = import.meta.url.includes("/$bunfs/");
