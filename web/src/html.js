// htm bound to Preact: JSX-like templates without a compiler plugin.
import { h } from "preact";
import htm from "htm";

export const html = htm.bind(h);
