#!/usr/bin/env -S node --max-semi-space-size=64
// The one CLI entry. TypeScript runs through tsx's loader: no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
