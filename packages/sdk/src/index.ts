export { redact } from "./redact.js";
