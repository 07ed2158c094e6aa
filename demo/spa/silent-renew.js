// The page the hidden iframe of a silent renewal lands on: hand the answer to the SPA's window.
import { loadConfig, userManager } from './manager.js';

const config = await loadConfig();
await userManager(config).signinSilentCallback();
