#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm install` (the prepare script).
// React's development build costs about a third more per dashboard frame; it
// must be chosen before anything imports React.
process.env.NODE_ENV ??= 'production';
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    process.stderr.write('mailq: not built yet; run `npm run build` (npm install does it)\n');
  } else {
    process.stderr.write(`mailq: internal error: ${err && err.stack ? err.stack : err}\n`);
  }
  process.exit(1);
});
