// A sub-agent in its own process. It was handed a token and the broker's address: nothing else.
import { fromToken } from "@perishable/sdk";
import OpenAI from "openai";

const session = await fromToken(process.env.PRS_TOKEN, { broker: process.env.PERISHABLE_URL });
console.log(`got a token for grant ${session.grant.grantId}, parent ${session.grant.parentGrantId}`);
const openai = new OpenAI({ ...session.openai(), maxRetries: 0 });
const embedding = await openai.embeddings.create({ model: "text-embedding-3-small", input: "three facts" });
console.log(`embedded the facts: ${embedding.data[0].embedding.length} dimensions`);
const denied = await openai.chat.completions
  .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
  .catch((error) => error);
console.log(`tries a chat completion → ${denied.status} ${denied.code}`);
session.close();
