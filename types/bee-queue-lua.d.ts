// bee-queue's internal script loader, used to reload its Lua scripts after Redis restarts.
declare module 'bee-queue/lib/lua/index.js' {
  const scripts: {
    buildCache(client: unknown): Promise<unknown>;
  };
  export default scripts;
}
