-- What a device learned about its contacts' LIDs (WhatsApp's anonymous `…@lid` ids): the phone
-- each belongs to. Chats and senders are filed under the phone once it is known, so one person
-- has one chat and opt-outs, replies and lead matching work by phone.
CREATE TABLE lid_phones (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- The user part of the LID (digits).
    lid TEXT NOT NULL,
    -- E.164 digits.
    phone TEXT NOT NULL,
    learned_at TIMESTAMP NOT NULL,
    PRIMARY KEY (device_id, lid)
);

-- Every kind of chat message: text, image, video, audio, voice, document, sticker, location,
-- contact. A document keeps its file name; a location or contact card its details as JSON.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
ALTER TABLE messages ADD COLUMN file_name TEXT;
ALTER TABLE messages ADD COLUMN detail TEXT;
-- Until now only pictures were stored with media.
UPDATE messages SET kind = 'image' WHERE media_mime IS NOT NULL;
