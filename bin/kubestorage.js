#!/usr/bin/env node
// The one CLI entry. TypeScript runs through tsx's loader: no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
